"""Local worker processes (`--workers N` > 1): Beam's FnApiRunner in multi-processing mode, with
workers that exit as soon as their work is done.

Beam starts each worker as `python -m apache_beam.runners.worker.sdk_worker_main`. At the end of a
run the runner closes one worker's control stream, waits for that process to exit, then moves on to
the next. A worker's SDK harness returns promptly, but the interpreter's own teardown after it
(Beam's and gRPC's threads, thousands of modules) takes ~1 s per worker, paid one worker after the
other. `LocalRunner` starts this module instead, which runs the same harness and then ends the
process at once. Nothing is lost by that: when the harness returns it has answered every request,
torn down the DoFns and flushed its log stream to the runner, and every output a worker writes is
closed within its bundle. A harness that fails raises as before (traceback, exit status 1).
"""

from __future__ import annotations

import logging
import os
import shlex
import sys

from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.transforms import environments

WORKER_COMMAND = f"{shlex.quote(sys.executable)} -m c4clean.pipelines.local_workers"


class LocalRunner(FnApiRunner):
    """The FnApiRunner whose worker processes run this module's `main`.

    In multi-processing mode the FnApiRunner sets its `_default_environment` to a subprocess
    environment running Beam's own worker command just before it translates the pipeline; this
    property swaps in `WORKER_COMMAND`. Other environments (in-process, one worker) pass unchanged.
    """

    @property
    def _default_environment(self):
        return self._environment

    @_default_environment.setter
    def _default_environment(self, environment):
        if isinstance(environment, environments.SubprocessSDKEnvironment):
            environment = environments.SubprocessSDKEnvironment.from_command_string(WORKER_COMMAND)
        self._environment = environment


def main() -> None:
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
