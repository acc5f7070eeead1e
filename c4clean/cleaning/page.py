"""The record every cleaning stage takes and returns (TFDS `c4_utils.PageFeatures`)."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional


@dataclasses.dataclass(frozen=True)
class Page:
    url: str
    text: str
    timestamp: str = ""  # WARC-Date, ISO 8601; compared as a string, as TFDS does
    content_type: str = ""
    content_length: str = ""  # header value as written; TFDS keeps it as text too
    normalized_url: str = ""
    language: Optional[str] = None  # WET `WARC-Identified-Content-Language`, later the detected one

    def replace(self, **changes) -> "Page":
        return dataclasses.replace(self, **changes)


class Decision(NamedTuple):
    """A page-level filter's verdict: whether the page stays, and the counter name that says why.

    `reason` is a code from `c4clean.cleaning.reasons` (PASSED, SOFT_PASSED, or a `filtered:*` code).
    """

    keep: bool
    reason: str
