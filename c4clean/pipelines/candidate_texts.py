"""Near-dedup's candidate texts as records: one bytes value per page, inline or spilled to a file.

Exact verification needs each candidate page's url and text at its component's root. A runner that
holds what it groups in memory (Beam's local runner, in the driver) would hold every candidate's
text there, so `c4clean run` writes each file's candidates to one file beside the key packs
(`spill`) and only (path, offset, length) crosses the shuffle; the component's step reads them back
(`read`). `RemoveNearDuplicates`, whose pages live in the pipeline, sends the records themselves.
"""

from __future__ import annotations

from typing import Optional

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


def spill(records: list[bytes], directory: Optional[str], name: str) -> list:
    """Writes `records` one after the other to the file `name` in `directory`, atomically ->
    (path, offset, length) of each. Without a directory, the records themselves."""
    if directory is None:
        return records
    from apache_beam.io.filesystems import FileSystems

    from c4clean import atomic

    path = FileSystems.join(directory, name)
    refs, offset = [], 0
    for record in records:
        refs.append((path, offset, len(record)))
        offset += len(record)
    atomic.write_bytes_fs(path, b"".join(records))
    return refs


def read(items: list) -> list[bytes]:
    """The record of each item, in order: the item itself, or read back where `spill` put it (one
    open per file, its ranges in offset order)."""
    from apache_beam.io.filesystems import CompressionTypes, FileSystems

    out = list(items)
    by_path: dict[str, list] = {}
    for i, item in enumerate(items):
        if not isinstance(item, bytes):
            path, offset, length = item
            by_path.setdefault(path, []).append((offset, length, i))
    for path, ranges in sorted(by_path.items()):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for offset, length, i in sorted(ranges):
                f.seek(offset)
                out[i] = f.read(length)
    return out
