"""The output folder of `c4clean run`: checked before any work, locked while a run writes it, cleaned
when the disk fills.

- A run writes only into a new or empty folder, or one that already holds a c4clean run (which it
  replaces, or continues with --resume): never into a folder of someone else's files.
- The lock is a file `<output>/.c4clean.lock` holding who runs (pid, host, start time), and an
  exclusive `flock` on it held for the whole run. The kernel drops the flock when its process dies,
  however it dies, so a lock file whose flock is free belongs to a killed run: it is taken over. A
  held one names its holder. (Object stores have no locks: remote outputs are not locked.)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

from c4clean import formats

log = logging.getLogger(__name__)

LOCK_FILE = formats.OUTPUT_LOCK_FILE
WORK_DIR = ".work"
# names a c4clean text output may hold besides its shards (the dataset card, data/ with the shards)
RUN_FILES = {
    formats.MANIFEST,
    formats.STATS,
    formats.REPORT,
    formats.NEAR_DUP_AUDIT_FILE,
    formats.HISTOGRAMS_PNG,
    formats.DATASET_CARD,
    formats.DATA_DIR,
    WORK_DIR,
    LOCK_FILE,
}
_TEMPORARY = re.compile(r"\.tmp(-[0-9a-f]+)?$|^\..*\.tmp$")  # Beam-filesystem and local atomic writes


class OutputError(ValueError):
    """The output folder cannot be used (a file, not writable, someone else's, in use)."""


def is_remote(path: str) -> bool:
    return "://" in path


def _foreign(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if n not in RUN_FILES and not _is_shard(n) and not _TEMPORARY.search(n))


def _is_shard(name: str) -> bool:
    if name.endswith(formats.SHARD_SIDECAR_SUFFIX):
        name = name[: -len(formats.SHARD_SIDECAR_SUFFIX)]
    return formats.parse_shard_name(name) is not None


def check(output: str) -> None:
    """Refuses an output that is a file, cannot be written, or holds files that are not a c4clean run;
    creates it when missing."""
    if is_remote(output):
        return
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise OutputError(f"--output {output} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".c4clean-probe-{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise OutputError(f"--output {output} is not writable ({error.strerror or error})") from None
    foreign = _foreign(os.listdir(path))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputError(
            f"--output {output} holds files that are not a c4clean run ({shown}); give a new or empty folder"
        )


# --- the lock --------------------------------------------------------------------------------------


def _describe(holder: dict) -> str:
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "unknown time"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {when}"


def _read_holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    try:
        found = json.loads(data.decode("utf-8"))
        return found if isinstance(found, dict) else {}
    except ValueError:
        return {}


@contextlib.contextmanager
def lock(output: str) -> Iterator[Optional[dict]]:
    """Holds the output folder's lock for the `with` block; yields the stale holder it took over from
    (None when the folder was free). Raises OutputError at once when another run holds it."""
    if is_remote(output):
        yield None
        return
    path = os.path.join(output, LOCK_FILE)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _read_holder(fd)
            os.close(fd)
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise OutputError(
                f"--output {output} is in use by another c4clean run ({_describe(holder)}); "
                "wait for it to finish or choose another --output"
            ) from None
        # the previous holder may have removed the file between our open and our flock: retry on the new one
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = _read_holder(fd) or None
    if stale:
        log.warning("taking over the lock of a run that is gone (%s)", _describe(stale))
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": round(time.time(), 3)}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(me) + "\n").encode())
    os.fsync(fd)
    try:
        yield stale
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


# --- a full disk -----------------------------------------------------------------------------------


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC, also when a worker process's error reaches the driver as text."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "[Errno 28]" in str(error) or "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _tree_bytes(path: Path) -> int:
    total = 0
    for root, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def remove_temporaries(output: str) -> int:
    """Removes the unfinished writes of a run (temporary files, the shard staging folder); returns
    their bytes. Finished per-input-file results stay for --resume."""
    path = Path(output)
    freed = 0
    staging = path / WORK_DIR / "shards"
    if staging.is_dir():
        freed += _tree_bytes(staging)
        shutil.rmtree(staging, ignore_errors=True)
    for root, _, names in os.walk(path):
        for name in names:
            if _TEMPORARY.search(name):
                file = os.path.join(root, name)
                with contextlib.suppress(OSError):
                    freed += os.lstat(file).st_size
                    os.unlink(file)
    return freed


def free_bytes(output: str) -> Optional[int]:
    return None if is_remote(output) else shutil.disk_usage(output).free


def disk_full_message(output: str, free_at_start: Optional[int], input_bytes: int) -> str:
    """Cleans up after a full disk and says how much space the run needed."""
    freed = remove_temporaries(output)
    needed = f"more than the {free_at_start:,} bytes free when it started" if free_at_start else "more space"
    return (
        f"disk full under {output}: the run needed {needed} (inputs: {input_bytes:,} bytes); "
        f"removed its {freed:,} bytes of temporary files. Free space or choose another --output "
        "(--resume reuses the finished per-file results)"
    )
