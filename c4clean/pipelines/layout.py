"""Where a run writes: every path of an output folder, derived once from `RunOptions.output`.

<output>/data/<split>-NNNNN-of-NNNNN.arrow|.parquet   final shards (moved into place by the driver)
<output>/manifest.json, stats.json, report.md, histograms.png, README.md (the dataset card)
<output>/.work/files/<key>.arrow|.json   per-input-file results (`perfile`, kept for --resume)
<output>/.work/shards/                   shards staged by the workers, and counts.json
<output>/.work/shards/passes/<i>-<file>.done   per-file pass i done (`passes`; the progress display)
<output>/.work/shards/pieces/   each input file's sorted pages of each shard (the last pass), merged
                                into the shards, removed once they are committed
"""

from __future__ import annotations

import dataclasses

from c4clean.formats import DATA_DIR, DATASET_CARD, HISTOGRAMS_PNG, MANIFEST, REPORT, STATS

COUNTS = "counts.json"  # the pipeline's own counts (`counting.WriteCounts`), beside the staged shards


def _join(*parts: str) -> str:
    from c4clean.storage import join

    return join(*parts)


@dataclasses.dataclass(frozen=True)
class RunLayout:
    output: str
    work_dir: str
    files_dir: str
    staging_dir: str
    counts: str
    passes_dir: str
    pieces_dir: str
    keys_dir: str
    manifest: str
    stats: str
    report: str
    data_dir: str
    histograms: str
    card: str

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
            passes_dir=_join(staging, "passes"),
            pieces_dir=_join(staging, "pieces"),
            keys_dir=_join(staging, "keys"),
            manifest=_join(output, MANIFEST),
            stats=_join(output, STATS),
            report=_join(output, REPORT),
            data_dir=_join(output, DATA_DIR),
            histograms=_join(output, HISTOGRAMS_PNG),
            card=_join(output, DATASET_CARD),
        )

    def in_output(self, name: str) -> str:
        return _join(self.output, name)

    def shard(self, name: str) -> str:
        """Where a final shard goes: data/, apart from the metadata."""
        return _join(self.data_dir, name)

    def staged(self, name: str) -> str:
        return _join(self.staging_dir, name)
