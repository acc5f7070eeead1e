"""Staging that starts before Beam is imported, in runs with local workers.

A run imports Beam (~3 s) and loads the models before it forks its workers (`pool`: they share what
it loaded), so for its first seconds one core works and the others wait. The early stager is forked
before that import, once the per-file rules are loaded, and stages input files (`perfile.run_file`,
which needs no Beam for local files) from the last one back, while the workers' staging stage takes
them from the first on.

Each file is claimed once, in a table that the stager and the workers share: the file is staged
once, and is the same whoever stages it. A worker whose file the stager holds waits for it. A file
the stager failed on, or held when it died, is staged by the worker (which reports what fails).
Only for local input files and a local output: no downloads, no object stores.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import multiprocessing
import os
import select
from typing import Iterator, Optional

from c4clean import storage
from c4clean.pipelines import perfile
from c4clean.process_group import leave_ctrl_c_to_the_run

# A file's claim: nobody yet, the stager (staging it), done by the stager, taken by a worker.
FREE, STAGER, DONE, WORKER = 0, 1, 2, 3
WAIT_SECONDS = 0.01  # a waiting worker's poll; it also wakes when the stager ends
LOCK_FILE = ".claims.lock"

_stager: Optional["EarlyStager"] = None  # set in the run's process; its workers inherit it


def usable(planned, download_cache: Optional[str], files_dir: str) -> bool:
    return (
        download_cache is None
        and storage.is_local(files_dir)
        and all(storage.is_local(p) for _, p in planned)
    )


class EarlyStager:
    """The stager process and the claims table; made in the run's process before its workers fork."""

    def __init__(self, elements: list, settings: perfile.PerFileSettings):
        context = multiprocessing.get_context("fork")
        self._claims = context.Array("b", len(elements), lock=False)
        os.makedirs(settings.files_dir, exist_ok=True)
        # flock: the kernel releases it when its holder dies, so a killed stager blocks nobody.
        self._lock_path = os.path.join(settings.files_dir, LOCK_FILE)
        self._lock_fd: Optional[int] = None
        self._lock_pid = 0
        # The stager holds the only write end of this pipe: its read end signals that the stager ended.
        self._ended, alive = os.pipe()
        self.process = context.Process(
            target=self._stage_all, args=(elements, settings), name="c4clean-early-stager", daemon=True
        )
        self.process.start()
        os.close(alive)

    @contextlib.contextmanager
    def _claiming(self) -> Iterator:
        if self._lock_pid != os.getpid():  # flock excludes open files: one per process
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            self._lock_pid = os.getpid()
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield self._claims
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _stage_all(self, elements: list, settings: perfile.PerFileSettings) -> None:
        """In the stager: stages the unclaimed files, the last first."""
        leave_ctrl_c_to_the_run()
        gc.freeze()  # what it shares with the run: collections would walk (and copy) it page by page
        try:
            rules = perfile.PageRules(settings)
            for position in reversed(range(len(elements))):
                with self._claiming() as claims:
                    if claims[position] != FREE:
                        continue
                    claims[position] = STAGER
                _, input_id, location = elements[position]
                try:
                    perfile.run_file(input_id, location, rules)
                except BaseException:
                    with self._claiming() as claims:
                        claims[position] = FREE  # a worker stages it and reports the error
                    return
                with self._claiming() as claims:
                    claims[position] = DONE
        except BaseException:  # noqa: BLE001 - whatever it could not stage, the workers stage
            return

    def _stager_ended(self) -> bool:
        return bool(select.select([self._ended], [], [], 0)[0])

    def take(self, position: int) -> bool:
        """In a worker about to stage the file at `position`: True if it is to stage it, False once the
        stager has."""
        while True:
            with self._claiming() as claims:
                if claims[position] == DONE:
                    return False
                if claims[position] != STAGER or self._stager_ended():
                    claims[position] = WORKER
                    return True
            select.select([self._ended], [], [], WAIT_SECONDS)

    def close(self) -> None:
        if self.process.is_alive():  # the run failed mid-staging (or it is past its last claimed file)
            self.process.terminate()
        self.process.join()
        os.close(self._ended)
        if self._lock_pid == os.getpid():  # this process claimed files too (as a worker in tests)
            os.close(self._lock_fd)
        with contextlib.suppress(OSError):
            os.remove(self._lock_path)


def staged_early(position: int) -> bool:
    """In a worker: whether the early stager staged the file at `position` (else the worker does)."""
    return _stager is not None and not _stager.take(position)


@contextlib.contextmanager
def early_stager(elements: list, settings: perfile.PerFileSettings) -> Iterator[EarlyStager]:
    """Starts the stager on `elements` (`perfile.staging_elements`); it ends with the block."""
    global _stager
    stager = _stager = EarlyStager(elements, settings)
    try:
        yield stager
    finally:
        _stager = None
        stager.close()
