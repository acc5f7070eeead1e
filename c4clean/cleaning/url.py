"""URL rules of C4: normalization, cross-dump URL dedup, the validation split, domain and URL lists.

All follow TFDS c4 v3.1.0 (`c4_utils.normalize_url`, `select_newest_page`, `is_realnews_domain`,
`filter_by_webtextlike`, and the `md5(normalized_url) % 1000` split in `c4.py`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Optional, Union

from c4clean.cleaning import reasons
from c4clean.cleaning.page import Decision, Page
from c4clean.lazy import Lazy

# re.sub replaces EVERY match, so a scheme inside the path ("a.com/?u=http://b.com") goes too.
_SCHEME_RE = re.compile(r"https?:\/\/(www\.)?")
# Everything from the first "?utm_", "?ref" or "?feed" on; other query strings stay.
_TRACKING_QUERY_RE = re.compile(r"\?(utm_|ref|feed).*")

TRAIN = "train"
VALIDATION = "validation"
VALIDATION_MODULUS = 1000  # validation iff md5(normalized_url) % 1000 == 0, i.e. 0.1% of URLs


def normalize_url(url: str) -> str:
    """TFDS `normalize_url`: drop schemes and a leading `www.`, tracking queries, trailing slashes."""
    url = _SCHEME_RE.sub("", url)
    url = _TRACKING_QUERY_RE.sub("", url)
    return url.rstrip("/")


def page_normalized_url(page: Page) -> str:
    """The page's normalized URL; readers leave it empty, so it is derived from `url` then."""
    return page.normalized_url or normalize_url(page.url)


def url_digest(url: str) -> bytes:
    """md5 of a URL: C4's order among pages, smallest first (line dedup keeps a line in the page
    whose ORIGINAL url ranks smallest; near-dedup keeps a cluster's smallest). Hashing first avoids
    favouring a domain. As an integer of the normalized URL it also picks the split."""
    return hashlib.md5(url.encode("utf-8")).digest()


def url_rank(url: str) -> str:
    """`url_digest` as hex (same order), for keys that travel as text."""
    return url_digest(url).hex()


def url_hash(normalized_url: str) -> int:
    """The integer value of md5(url) (what TFDS's split and soft bad-words filter take modulo)."""
    return int.from_bytes(url_digest(normalized_url), "big")


def split_for_url(normalized_url: str) -> str:
    return VALIDATION if url_hash(normalized_url) % VALIDATION_MODULUS == 0 else TRAIN


def select_newest_page(pages: Iterable[Optional[Page]]) -> Optional[Page]:
    """The page with the largest timestamp (ISO strings compared as strings); ties: first seen.

    The pipeline's URL-dedup combiner calls it on two candidates at a time, in reading order
    (`transforms._newer`); `None` entries are skipped and an empty input gives `None`.
    """
    selected = None
    for page in pages:
        if page is not None and (selected is None or page.timestamp > selected.timestamp):
            selected = page
    return selected


# --- domain lists (realnewslike) -----------------------------------------------------------------

DomainMap = Mapping[str, Union[bool, list]]


def _offline_tld_extractor():
    """tldextract with its bundled public-suffix snapshot: no fetch, no cache directory."""
    import tldextract

    extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    extractor("example.com")  # builds the suffix trie now, while Lazy holds its lock
    return extractor


_tld_extractor = Lazy(_offline_tld_extractor)


class DomainFilter:
    """Keeps pages whose registered domain is in a map, as TFDS `is_realnews_domain` does.

    The map is `{"domain.suffix": true | [allowed subdomains]}` (the RealNews JSON format). As in
    TFDS v3.1.0 the check runs on the normalized URL, so `www.` is already gone from the subdomain.
    """

    def __init__(self, domains: DomainMap):
        self.domains = dict(domains)

    @classmethod
    def realnews(cls) -> "DomainFilter":
        """The RealNews list TFDS pins (rowanz/grover @ 38f7184, 5,036 domains), packaged."""
        text = resources.files("c4clean.cleaning").joinpath("data/realnews_domains.json").read_text("utf-8")
        return cls(json.loads(text))

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> "DomainFilter":
        """A user's list: the RealNews JSON format, or plain text with one domain per line.

        In plain text, `bbc.co.uk` allows every subdomain and `news.bbc.co.uk` allows only `news`;
        blank lines and lines starting with `#` are ignored.
        """
        text = Path(path).read_text("utf-8")
        if text.lstrip().startswith("{"):
            domains = json.loads(text)
            bad = [k for k, v in domains.items() if not (v is True or isinstance(v, list))]
            if bad:
                raise ValueError(f"{path}: values must be true or a list of subdomains, not for {bad[:3]}")
            return cls(domains)
        domains: dict = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip().lower()
            if not line or line.startswith("#"):
                continue
            ext = _tld_extractor()(normalize_url(line))
            if not ext.domain or not ext.suffix:
                raise ValueError(f"{path}:{number}: not a domain name: {raw!r}")
            main = ext.domain + "." + ext.suffix
            if not ext.subdomain:
                domains[main] = True
            elif domains.get(main) is not True:
                domains.setdefault(main, []).append(ext.subdomain)
        return cls(domains)

    def __call__(self, page: Page) -> Decision:
        ext = _tld_extractor()(page_normalized_url(page))
        allowed = self.domains.get(ext.domain + "." + ext.suffix)
        if allowed is None:
            return Decision(False, reasons.BAD_DOMAIN)
        if isinstance(allowed, list) and ext.subdomain not in allowed:
            return Decision(False, reasons.BAD_SUBDOMAIN)
        return Decision(True, reasons.PASSED)


# --- URL lists (webtextlike) ---------------------------------------------------------------------


def read_url_list(path: Union[str, Path]) -> Iterator[str]:
    """Normalized URLs of a list file (one URL per line; `.gz` allowed), blank lines skipped."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            url = line.strip()
            if url:
                yield normalize_url(url)


class UrlListFilter:
    """Keeps pages whose normalized URL is in a list (TFDS webtextlike: an inner join on it).

    For lists too big for one worker's memory, the pipeline joins on `read_url_list` instead.
    """

    def __init__(self, normalized_urls: Iterable[str]):
        self.urls = frozenset(normalized_urls)

    @classmethod
    def from_file(cls, *paths: Union[str, Path]) -> "UrlListFilter":
        return cls(url for path in paths for url in read_url_list(path))

    def __len__(self) -> int:
        return len(self.urls)

    def __call__(self, page: Page) -> Decision:
        if page_normalized_url(page) in self.urls:
            return Decision(True, reasons.PASSED)
        return Decision(False, reasons.FILTERED)
