"""A local run's worker processes end with it, however it ends.

A local run's workers are child processes (forks, `pipelines.pool`). When the run ends by an
exception (Ctrl-C included) the run itself stops its remaining descendants. For a SIGKILL, which
runs no code, the run leads its own process group and a small watchdog process (in a session of its
own) waits on a pipe from it: end of file without the word "done" means the run died, and the
watchdog kills what is left of the run's process group.

In a terminal's foreground job the run keeps the job's group (moving out of it would stop Ctrl-C from
reaching it): the terminal delivers Ctrl-C and hang-up to the whole job, workers included (they
ignore Ctrl-C and leave it to the run).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Iterator

# Runs in the watchdog process: argv = [process group, the run's pid].
_WATCHDOG = r"""
import os, signal, sys, time
group, run = int(sys.argv[1]), int(sys.argv[2])
if sys.stdin.buffer.read() == b"done":
    sys.exit(0)
while os.getppid() == run:  # the run is exiting: let it finish dying first
    time.sleep(0.05)
for sig in (signal.SIGTERM, signal.SIGKILL):
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        break
    time.sleep(1.0)
"""


# This process's ends of the pipes that tell its watchdog and interrupt watcher it lives: a forked
# worker must not hold them (the watchdog would never see the run die), so it closes its copies.
_RUN_ONLY_FDS: set[int] = set()


def leave_ctrl_c_to_the_run() -> None:
    """What a worker process (a local worker, the early stager) does first: it ignores Ctrl-C, which
    the run handles by ending its workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _forget_run_fds() -> None:
    for fd in _RUN_ONLY_FDS:
        with contextlib.suppress(OSError):
            os.close(fd)
    _RUN_ONLY_FDS.clear()
    with contextlib.suppress(ValueError):  # forked from another thread than the main one
        signal.set_wakeup_fd(-1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_run_fds)


def _in_terminal_foreground() -> bool:
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return True
    return False


def descendants(pid: int) -> list[int]:
    """Pids of every process below `pid` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        parent = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop(pids: list[int], grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL for what is still there after `grace` seconds."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _alive(p)]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _workers(watchdog) -> list[int]:
    return [p for p in descendants(os.getpid()) if watchdog is None or p != watchdog.pid]


class _InterruptWatcher:
    """Ctrl-C reaches Python's handler only when the main thread runs Python code, and it may wait
    in C code for a while. A thread woken by the signal (`signal.set_wakeup_fd`) stops the workers at
    once, so that no work goes on after Ctrl-C and the wait for them ends. Either of them, whichever
    runs first, records that the run was interrupted (`interrupted`)."""

    def __init__(self, read_end: int, write_end: int, previous: int, on_interrupt):
        self.read_end, self.write_end, self.previous = read_end, write_end, previous
        self.on_interrupt = on_interrupt
        self.interrupted = False
        self.thread = threading.Thread(target=self._watch, name="c4clean-interrupt", daemon=True)
        self.previous_handler = signal.getsignal(signal.SIGINT)
        if callable(self.previous_handler):  # not where Ctrl-C is ignored
            signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        self.interrupted = True
        self.previous_handler(signum, frame)

    @classmethod
    def start(cls, on_interrupt) -> "_InterruptWatcher | None":
        if threading.current_thread() is not threading.main_thread():
            return None
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        watcher = cls(read_end, write_end, previous, on_interrupt)
        _RUN_ONLY_FDS.update((read_end, write_end))
        watcher.thread.start()
        return watcher

    def _watch(self) -> None:
        while data := os.read(self.read_end, 64):
            if 0 in data:  # close()
                return
            if signal.SIGINT in data:
                self.interrupted = True
                self.on_interrupt()

    def close(self) -> None:
        if callable(self.previous_handler):
            signal.signal(signal.SIGINT, self.previous_handler)
        signal.set_wakeup_fd(self.previous)
        os.write(self.write_end, b"\0")
        self.thread.join()
        _RUN_ONLY_FDS.difference_update((self.read_end, self.write_end))
        os.close(self.read_end)
        os.close(self.write_end)


@contextlib.contextmanager
def children_end_with_this_process() -> Iterator[None]:
    """For the `with` block: child processes started inside it end when it ends or this process dies."""
    if os.name != "posix":
        yield
        return
    if os.getpgrp() != os.getpid() and not _in_terminal_foreground():
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
    watchdog = write_end = None
    if os.getpgrp() == os.getpid():
        read_end, write_end = os.pipe()
        watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(os.getpgrp()), str(os.getpid())],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(read_end)
        _RUN_ONLY_FDS.add(write_end)
    watcher = _InterruptWatcher.start(lambda: stop(_workers(watchdog)))
    try:
        yield
    except Exception as error:
        # After Ctrl-C the run fails with whatever the stopped workers left: a wait on a dead worker,
        # or Beam's RuntimeError("KeyboardInterrupt [while running ...]"), as Beam re-raises an
        # interrupt met inside a DoFn. That failure is the interrupt.
        if watcher is not None and watcher.interrupted:
            raise KeyboardInterrupt from error
        raise
    finally:
        if watcher is not None:
            watcher.close()
        left = _workers(watchdog)
        if left:
            stop(left)
        if write_end is not None:
            os.write(write_end, b"done")
            _RUN_ONLY_FDS.discard(write_end)
            os.close(write_end)
            watchdog.wait()
