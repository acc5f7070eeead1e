"""Where a run writes: every path of an output folder, derived once from `RunOptions.output`.

<output>/<split>-NNNNN-of-NNNNN.arrow   final shards (moved into place by the driver)
<output>/manifest.json, stats.json, report.md
<output>/.work/files/<key>.arrow|.json   per-input-file results (`perfile`, kept for --resume)
<output>/.work/shards/                   shards staged by the workers, and counts.json
"""

from __future__ import annotations

import dataclasses

from c4clean.formats import MANIFEST, REPORT, STATS

COUNTS = "counts.json"  # the pipeline's own counts (`counting.WriteCounts`), beside the staged shards


def _join(*parts: str) -> str:
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.join(*parts)


@dataclasses.dataclass(frozen=True)
class RunLayout:
    output: str
    work_dir: str
    files_dir: str
    staging_dir: str
    counts: str
    manifest: str
    stats: str
    report: str

    @classmethod
    def of(cls, output: str) -> "RunLayout":
        """The layout of an output folder (`RunLayout.of(options.output)`); any Beam filesystem."""
        work = _join(output, ".work")
        staging = _join(work, "shards")
        return cls(
            output=output,
            work_dir=work,
            files_dir=_join(work, "files"),
            staging_dir=staging,
            counts=_join(staging, COUNTS),
            manifest=_join(output, MANIFEST),
            stats=_join(output, STATS),
            report=_join(output, REPORT),
        )

    def in_output(self, name: str) -> str:
        return _join(self.output, name)

    def staged(self, name: str) -> str:
        return _join(self.staging_dir, name)
