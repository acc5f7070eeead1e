"""Near-dedup's candidate texts as records: one bytes value per page, inline or spilled to a file.

Exact verification needs each candidate page's url and text at its component's root. A runner that
holds what it groups in memory (Beam's local runner, in the driver) would hold every candidate's
text there, so `c4clean run` writes each file's candidates to one file beside the key packs
(`spill.write`) and only (path, offset, length) crosses the shuffle; the component's step reads them
back (`spill.read`). `RemoveNearDuplicates`, whose pages live in the pipeline, sends the records
themselves.
"""

from __future__ import annotations

_URL_LENGTH = 4  # bytes of the url's length before it


def encode(url: str, text: str) -> bytes:
    """A page's record: the url's length, the url, the text (UTF-8)."""
    url_bytes = url.encode("utf-8", "surrogatepass")
    return len(url_bytes).to_bytes(_URL_LENGTH, "big") + url_bytes + text.encode("utf-8", "surrogatepass")


def decode(record: bytes) -> tuple[str, str]:
    """(url, text) of an `encode` record."""
    end = _URL_LENGTH + int.from_bytes(record[:_URL_LENGTH], "big")
    url, text = record[_URL_LENGTH:end], record[end:]
    return url.decode("utf-8", "surrogatepass"), text.decode("utf-8", "surrogatepass")
