"""The processes of local workers (`--workers N` > 1); `local_workers.LocalRunner` starts them.

`python -m c4clean.pipelines.worker_process` is one worker: Beam's SDK harness, as
`apache_beam.runners.worker.sdk_worker_main` runs it, then an immediate exit (`run_harness`).

Warm start: importing Beam takes a new worker ~3 s, and Beam starts its workers only when the first
stage runs, after the driver has built and translated the pipeline. So the runner starts its workers
before that (`--warm SOCKET`): each imports Beam, then waits for a connection on SOCKET. The command
Beam runs for a worker (`--attach FOLDER`) claims one warm worker, hands it the environment Beam
gives a worker (the control and logging endpoints, the pipeline options), and lives exactly as long
as it, exiting with its status. Without a warm worker to claim, it runs the harness itself.

A warm worker that is never claimed ends when its standard input closes: the driver holds the other
end, so that happens when the run ends, however it ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import weakref
from typing import Iterator, Optional

MODULE = "c4clean.pipelines.worker_process"
COMMAND = f"{shlex.quote(sys.executable)} -m {MODULE}"  # one worker, started cold
CLAIM_SUFFIX = ".claimed"
SOCKET_SUFFIX = ".sock"
_FAILED = 1  # exit status of a worker whose harness failed or vanished
# How long ending a run waits for a warm worker to notice before killing it (one still importing
# Beam notices when the import is done).
_END_WAIT_S = 10.0


class WarmWorkers:
    """`count` warm worker processes (`warm`), each on a socket in one private folder."""

    def __init__(self, count: int):
        self.count = count
        self.folder = tempfile.mkdtemp(prefix="c4clean-workers-")
        self._processes = [
            subprocess.Popen(
                [sys.executable, "-m", MODULE, "--warm", os.path.join(self.folder, f"{i}{SOCKET_SUFFIX}")],
                stdin=subprocess.PIPE,
            )
            for i in range(count)
        ]
        self._finalizer = weakref.finalize(self, _end, self._processes, self.folder)

    @property
    def command(self) -> str:
        """What Beam runs for each worker: claim one of these processes (`attach`)."""
        return f"{COMMAND} --attach {shlex.quote(self.folder)}"

    def close(self) -> None:
        """Ends the workers no one claimed (claimed ones end with their harness); idempotent."""
        self._finalizer()


def _end(processes: list[subprocess.Popen], folder: str) -> None:
    for process in processes:
        process.stdin.close()
    for process in processes:
        try:
            process.wait(timeout=_END_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    shutil.rmtree(folder, ignore_errors=True)


_started: Optional[WarmWorkers] = None


@contextlib.contextmanager
def warm_workers(count: int) -> Iterator[None]:
    """Starts `count` warm workers for the local run inside this block (`LocalRunner` takes them
    with `take_warm_workers`); whatever is left of them ends with the block."""
    global _started
    workers = _started = WarmWorkers(count)
    try:
        yield
    finally:
        _started = None
        workers.close()


def take_warm_workers(count: int) -> Optional[WarmWorkers]:
    """The warm workers `warm_workers` started, if there are `count` of them (once)."""
    global _started
    workers, _started = _started, None
    return workers if workers is not None and workers.count == count else None


def _harness() -> None:
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()


def run_harness() -> None:
    """Beam's SDK harness for the endpoints in os.environ; then the process ends at once.

    Exiting at once skips the interpreter's teardown of Beam's and gRPC's threads and thousands of
    modules (~1 s per worker, paid one worker after the other as the runner closes them). Nothing is
    lost by that: when the harness returns it has answered every request, torn down the DoFns and
    flushed its log stream to the runner, and every output a worker writes is closed within its
    bundle. A harness that fails raises as before (traceback, exit status 1).
    """
    _harness()
    os._exit(0)


def _receive_line(connection: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    return data


def _remove_traces(socket_path: str) -> None:
    """Removes a warm worker's socket and claim files, and the folder once it is empty: the driver
    does that too, but a driver killed outright cannot."""
    for path in (socket_path, socket_path + CLAIM_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(socket_path))


def warm(socket_path: str) -> None:
    """Imports Beam, then runs the harness for the first `attach` that connects to `socket_path`
    and reports its exit status there; exits quietly when standard input closes first."""

    def end_unclaimed(*_) -> None:
        _remove_traces(socket_path)
        os._exit(0)

    # Until claimed, Ctrl-C is the run's to handle (it ends, and so does this process's stdin), and
    # the end of the run (stdin closed, or SIGTERM from the run's watchdog) ends this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, end_unclaimed)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)  # before the slow import, so an early `attach` waits rather than fails
    listener.listen(1)
    from apache_beam.runners.worker import sdk_worker_main  # noqa: F401 - the point of warming up

    ready, _, _ = select.select([listener, sys.stdin], [], [])
    if listener not in ready:
        end_unclaimed()  # the run has ended without needing this worker
    connection, _ = listener.accept()
    listener.close()
    _remove_traces(socket_path)  # claimed: nothing else may connect
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a worker Beam starts itself
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ.update(json.loads(_receive_line(connection)))
    status = _FAILED
    try:
        _harness()
        status = 0
    finally:
        with contextlib.suppress(OSError):  # the attached process may be gone already
            connection.sendall(f"{status}\n".encode())
    os._exit(0)


def attach(folder: str) -> None:
    """Claims a warm worker in `folder` (the first whose claim file this process creates), gives it
    this process's environment and exits with its status; runs the harness here if none is left."""
    # A relay: Ctrl-C is for the worker it attaches to (and the run), not for it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    names = (
        sorted(n for n in os.listdir(folder) if n.endswith(SOCKET_SUFFIX)) if os.path.isdir(folder) else []
    )
    for name in names:
        path = os.path.join(folder, name)
        try:
            os.close(os.open(path + CLAIM_SUFFIX, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(path)
        except OSError:  # that warm worker is gone (claimed just now, or its run is ending)
            connection.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + CLAIM_SUFFIX)
            continue
        connection.sendall(json.dumps(dict(os.environ)).encode() + b"\n")
        reply = _receive_line(connection).strip()
        sys.exit(int(reply) if reply.isdigit() else _FAILED)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    run_harness()


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[1] == "--warm":
        warm(argv[2])
    elif len(argv) == 3 and argv[1] == "--attach":
        attach(argv[2])
    else:
        run_harness()


if __name__ == "__main__":
    main(sys.argv)
