"""Atomic writes: a reader sees the old file (or directory) or the new one, never a partial one.

Local files (`write_bytes`, `write_text`, `write_json`, `replacing`, `replacing_dir`) are written
to a hidden temporary sibling, fsynced and renamed over the final name. `write_bytes_fs` does the
same without the fsync for the pipeline's files, whose paths may be gs://, s3:// (through Beam's
FileSystems) or local.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; give final files the usual permissions.
FILE_MODE = 0o666 & ~_umask()


def _fsync(path: str | os.PathLike) -> None:
    """fsync a file or (where the OS allows opening one) a directory."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; on success fsync it and rename it over `path`.

    On any error (or interrupt) the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        _fsync(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> None:
    """Stable JSON (sorted keys, indented) so that re-runs give the same bytes."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def replacing_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success fsync its files and rename it to `final`
    (replacing an existing directory); on error remove it and leave `final` untouched.

    Temporaries are named `.tmp-<name>-<pid>` (the one being written) and `.old-<name>-<pid>` (the
    directory being replaced): `remove_stale_dirs` clears what a killed writer left.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.iterdir():
            _fsync(f)
        _fsync(tmp)
        if final.exists():  # replacing: move the old one aside first so `final` is never half there
            old = final.parent / f".old-{final.name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
        _fsync(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_dirs(parent: str | os.PathLike) -> None:
    """Remove the temporaries `replacing_dir` leaves when killed (never a complete directory)."""
    root = Path(parent)
    for junk in list(root.glob(".tmp-*")) + list(root.glob(".old-*")) if root.is_dir() else []:
        shutil.rmtree(junk, ignore_errors=True)


@contextlib.contextmanager
def creating_fs(path: str) -> Iterator:
    """Yield a file (local, or gs://, s3://... through Beam's FileSystems) to write `path` through, under a
    unique temporary name renamed to `path` when the block ends (local: os.replace, which replaces
    atomically; object stores: a copy, complete or absent); on error the temporary is removed."""
    from c4clean import storage

    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    if storage.is_local(path):  # without Beam (`storage`)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        try:
            with open(tmp, "wb") as f:
                yield f
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        return
    from apache_beam.io.filesystems import CompressionTypes, FileSystems

    try:
        with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            yield f
        FileSystems.rename([tmp], [path])
    except BaseException:
        with contextlib.suppress(Exception):
            if FileSystems.exists(tmp):
                FileSystems.delete([tmp])
        raise


def write_bytes_fs(path: str, data: bytes) -> None:
    """Write `data` to `path` (local, gs://, s3://...) atomically (`creating_fs`)."""
    with creating_fs(path) as f:
        f.write(data)
