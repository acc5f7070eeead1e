"""Work files for what a grouping would otherwise hold: records (bytes) written one after another to
one file, each then referred to by (path, offset, length).

A runner that holds what it groups in memory (Beam's local runner, in the driver) then holds small
references instead of the keys, messages and texts of the corpus-wide steps; the step that needs
the records reads them back (`read`). Without a folder (pages held in the pipeline, tests) the
records themselves travel, and `read` takes both forms.
"""

from __future__ import annotations

from typing import Optional


def write(records: list[bytes], directory: Optional[str], name: str) -> list:
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


def read(items) -> list[bytes]:
    """The record of each item, in order: the item itself, or read back where `write` put it (one
    open per file, its ranges in offset order)."""
    from apache_beam.io.filesystems import CompressionTypes, FileSystems

    out = list(items)
    by_path: dict[str, list] = {}
    for i, item in enumerate(out):
        if not isinstance(item, bytes):
            path, offset, length = item
            by_path.setdefault(path, []).append((offset, length, i))
    for path, ranges in sorted(by_path.items()):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for offset, length, i in sorted(ranges):
                f.seek(offset)
                out[i] = f.read(length)
    return out
