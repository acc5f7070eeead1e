"""The early stager (`pipelines.early_staging`): forked before a run with local workers imports Beam,
it stages input files from the last one back while the workers take them from the first. Each file
is staged once and the same as in one process; a file the stager failed on, or held when it died, is
staged by a worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from c4clean.pipelines import early_staging, perfile

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the stager is forked")

REPO = Path(__file__).resolve().parents[1]
WET = sorted((REPO / "sample_data" / "wet").glob("*.wet.gz"))


def _settings(files_dir: Path) -> perfile.PerFileSettings:
    return perfile.PerFileSettings(
        files_dir=str(files_dir),
        signature="test",
        clean=True,
        paragraph_filter=False,
        domain_filter=None,
        resume=False,
    )


def _elements() -> list:
    return perfile.staging_elements([(str(p), str(p)) for p in WET])


def _log_staging(monkeypatch, log: Path, before=None) -> None:
    """perfile.run_file logs 'pid input' once it has staged a file (in the stager too: it is a fork);
    `before(input_id)` runs first."""
    real = perfile.run_file

    def logged(input_id, location, rules):
        if before is not None:
            before(input_id)
        path = real(input_id, location, rules)
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {input_id}\n")
        return path

    monkeypatch.setattr(perfile, "run_file", logged)


def _stage_as_a_worker(stager, elements, settings) -> None:
    """What the workers' staging stage does: each file in order, staged here unless the stager has."""
    rules = perfile.PageRules(settings)
    for position, input_id, location in elements:
        if stager.take(position):
            perfile.run_file(input_id, location, rules)


def _staged_by(log: Path) -> dict[str, list[int]]:
    by: dict[str, list[int]] = {}
    for line in log.read_text().splitlines():
        pid, input_id = line.split(" ", 1)
        by.setdefault(input_id, []).append(int(pid))
    return by


def _wait_for_the_stagers_claim(stager, position: int) -> None:
    while stager._claims[position] == early_staging.FREE and stager.process.is_alive():
        stager.process.join(0.01)


def test_each_file_is_staged_once_and_as_one_process_stages_it(tmp_path, monkeypatch):
    elements, settings, log = _elements(), _settings(tmp_path / "files"), tmp_path / "log"
    _log_staging(monkeypatch, log)
    with early_staging.early_stager(elements, settings) as stager:
        _wait_for_the_stagers_claim(stager, len(elements) - 1)
        _stage_as_a_worker(stager, elements, settings)
    by = _staged_by(log)
    assert sorted(by) == sorted(input_id for _, input_id, _ in elements)
    assert all(len(pids) == 1 for pids in by.values()), by
    assert by[elements[-1][1]] != [os.getpid()]  # the last file: the stager's
    assert by[elements[0][1]] == [os.getpid()]  # the first: the worker's
    # The same bytes as staged in one process.
    alone = _settings(tmp_path / "alone")
    rules = perfile.PageRules(alone)
    for _, input_id, location in elements:
        mine = Path(perfile.run_file(input_id, location, rules))
        theirs = Path(perfile.work_paths(settings.files_dir, input_id, settings.signature)[0])
        assert mine.read_bytes() == theirs.read_bytes()
    assert not (tmp_path / "files" / early_staging.LOCK_FILE).exists()


def _in_the_stager(action, input_id_to_fail: str):
    test_pid = os.getpid()

    def before(input_id):
        if os.getpid() != test_pid and input_id == input_id_to_fail:
            action()

    return before


def _kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def _fail():
    raise OSError("no space left on device")


@pytest.mark.parametrize("action", [_kill_self, _fail], ids=["killed", "failing"])
def test_a_file_the_stager_held_when_it_died_or_failed_is_staged_by_the_worker(tmp_path, monkeypatch, action):
    elements, settings, log = _elements(), _settings(tmp_path / "files"), tmp_path / "log"
    last = elements[-1][1]
    _log_staging(monkeypatch, log, before=_in_the_stager(action, last))
    with early_staging.early_stager(elements, settings) as stager:
        _wait_for_the_stagers_claim(stager, len(elements) - 1)
        _stage_as_a_worker(stager, elements, settings)
    by = _staged_by(log)
    assert by == {input_id: [os.getpid()] for _, input_id, _ in elements}


_PROBE = """
import sys
from c4clean.pipelines import early_staging, perfile

start = early_staging.EarlyStager.__init__
def probe(self, *args, **kwargs):
    print("Beam imported when the stager forks:", "apache_beam" in sys.modules, file=sys.stderr, flush=True)
    start(self, *args, **kwargs)
early_staging.EarlyStager.__init__ = probe

stage = perfile.run_file
def logged(input_id, *args):
    path = stage(input_id, *args)
    print("staged", input_id, file=sys.stderr, flush=True)
    return path
perfile.run_file = logged

from c4clean.cli import entry
sys.argv = ["c4clean", "run", "--input", sys.argv[1], "--output", sys.argv[2], "--workers", "2", "-q"]
entry()
"""


def test_a_two_worker_run_forks_the_stager_before_importing_beam_and_stages_each_file_once(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(REPO / "sample_data" / "wet"), str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "Beam imported when the stager forks: False" in lines
    staged = sorted(line.split(" ", 1)[1] for line in lines if line.startswith("staged "))
    assert staged == sorted(str(p) for p in WET)
