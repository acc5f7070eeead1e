"""Files by path for the per-input-file steps: local paths through `os`, any other (gs://, s3://...)
through Beam's FileSystems.

Local paths skip Beam so that the early stager (`pipelines.early_staging`), forked before the run
imports Beam (~3 s), stages files without importing it. For local paths both give the same result.
"""

from __future__ import annotations

import os
from typing import BinaryIO


def is_local(path: str) -> bool:
    return "://" not in path


def join(base: str, *parts: str) -> str:
    if is_local(base):
        return os.path.join(base, *parts)
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.join(base, *parts)


def open_read(path: str) -> BinaryIO:
    """The file's bytes as stored (a .gz is not decompressed)."""
    if is_local(path):
        return open(path, "rb")
    from apache_beam.io.filesystems import CompressionTypes, FileSystems

    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def identity(path: str) -> dict:
    """Size and mtime of a file (what `--resume` compares)."""
    if is_local(path):
        status = os.stat(path)
        return {"size": status.st_size, "mtime": status.st_mtime}
    from apache_beam.io.filesystems import FileSystems

    metadata = FileSystems.match([path])[0].metadata_list[0]
    return {"size": metadata.size_in_bytes, "mtime": metadata.last_updated_in_seconds}
