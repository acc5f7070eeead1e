"""The progress display of `c4clean run`: files done of total, pages read, pages/s, elapsed, ETA.

It counts file steps: each input file is staged once (`<work>/files/<key>.json`, written when the
file is read) and then goes through the per-file passes (`passes`: a marker per file and pass), so
the bar moves through the whole run, and its label names the pass under way. It polls these files
and the staged shards from the driver: that works on every runner whose workers share the output
filesystem with the driver (local, a dask cluster, gs:// on Dataflow), with no runner API.
"""

from __future__ import annotations

import sys
import threading
import time

from c4clean.cleaning import reasons
from c4clean.formats import parse_shard_name
from c4clean.pipelines import passes, perfile

POLL_SECONDS = 1.0


def _paths(pattern: str) -> set[str]:
    from apache_beam.io.filesystems import FileSystems

    try:
        return {m.path for m in FileSystems.match([pattern])[0].metadata_list}
    except Exception:  # noqa: BLE001 - a folder not created yet, or a transient listing error
        return set()


class RunProgress:
    """A tqdm bar over the input files, then over the shards; a context manager."""

    def __init__(self, options, planned, stream=None):
        signature = options.per_file_signature()
        layout = options.layout
        self._expected = {perfile.work_paths(layout.files_dir, i, signature)[1] for i, _ in planned}
        self._files_pattern = layout.files_dir.rstrip("/") + "/*.json"
        self._shards_pattern = layout.staging_dir.rstrip("/") + "/*.json"
        self._passes_pattern = layout.passes_dir.rstrip("/") + "/*" + passes.DONE_SUFFIX
        self._pass_names = [passes.PASS_NAMES[emit] for emit in passes.pass_plan(options)]
        self._pass_parts = passes.pass_parts(options, len(planned))
        self._stream = stream or sys.stderr
        self._done: dict[str, int] = {}  # per-file JSON -> pages read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="c4clean-progress", daemon=True)
        self._bar = None

    def __enter__(self):
        from tqdm import tqdm

        self._started = self._last_file = time.monotonic()
        steps = len(self._expected) * (1 + len(self._pass_names))
        self._bar = tqdm(total=steps, desc="reading", unit="file step", file=self._stream, dynamic_ncols=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._poll()
        self._bar.close()

    @property
    def steps(self) -> tuple[int, int]:
        """(file steps done, file steps in all): staging and each pass, per input file."""
        return self._bar.n, self._bar.total

    def _loop(self):
        while not self._stop.wait(POLL_SECONDS):
            self._poll()

    def _poll(self):
        for path in sorted((_paths(self._files_pattern) & self._expected) - set(self._done)):
            summary = perfile.read_summary(path)
            if summary is not None:
                self._done[path] = summary.total(reasons.NS_READ, reasons.PASSED)
                self._last_file = time.monotonic()
        pages = sum(self._done.values())
        # The reading rate: up to the last file done (later stages read nothing new).
        reading = self._last_file if len(self._done) == len(self._expected) else time.monotonic()
        rate = pages / max(reading - self._started, 1e-9)
        shards = len([p for p in _paths(self._shards_pattern) if parse_shard_name(p[: -len(".json")])])
        passed = [0] * len(self._pass_names)
        for path in _paths(self._passes_pattern):
            passed[passes.marker_pass(path)] += 1
        # A file's step of a pass is done in parts (`passes.pass_parts`): the bar counts whole steps.
        self._bar.n = len(self._done) + sum(n // parts for n, parts in zip(passed, self._pass_parts))
        under_way = next(
            (i for i, n in enumerate(passed) if n < len(self._expected) * self._pass_parts[i]), None
        )
        if len(self._done) == len(self._expected):  # every file read: name the pass under way
            if under_way is None:
                self._bar.set_description_str("passes done")
            else:
                name = self._pass_names[under_way]
                self._bar.set_description_str(f"pass {under_way + 1}/{len(passed)}: {name}")
        after = f", {shards} shards written" if shards else ""
        self._bar.set_postfix_str(f"{pages:,} pages read, {rate:,.0f} pages/s{after}", refresh=False)
        self._bar.refresh()
