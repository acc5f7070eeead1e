"""Local worker processes (`--workers N` > 1): Beam's FnApiRunner in multi-processing mode, with
workers that start while the driver builds the pipeline and exit as soon as their work is done
(`worker_process` says how).
"""

from __future__ import annotations

from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.transforms import environments

from c4clean.pipelines import worker_process


class LocalRunner(FnApiRunner):
    """The FnApiRunner whose worker processes are c4clean's (`worker_process`), started warm.

    In multi-processing mode the FnApiRunner sets its `_default_environment` to a subprocess
    environment running Beam's own worker command just before it translates the pipeline; this
    property swaps in c4clean's. Other environments (in-process, one worker) pass unchanged.
    """

    def __init__(self, workers: int = 1):
        super().__init__()
        # The ones `c4clean run` started before importing Beam, or started now, as the driver begins to
        # build the pipeline: either way their start-up overlaps the driver's.
        self._warm = worker_process.take_warm_workers(workers)
        if self._warm is None and workers > 1:
            self._warm = worker_process.WarmWorkers(workers)

    @property
    def _default_environment(self):
        return self._environment

    @_default_environment.setter
    def _default_environment(self, environment):
        if isinstance(environment, environments.SubprocessSDKEnvironment):
            command = self._warm.command if self._warm is not None else worker_process.COMMAND
            environment = environments.SubprocessSDKEnvironment.from_command_string(command)
        self._environment = environment

    def run_pipeline(self, pipeline, options):
        try:
            return super().run_pipeline(pipeline, options)
        finally:
            if self._warm is not None:
                self._warm.close()
