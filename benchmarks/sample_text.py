"""Text shards for the tokenizer and loader benchmarks, made by the package itself: the sample WET's
pages (c4clean's WET reader, no cleaning) written by the pipeline's shard writer, so they are in
`c4clean run`'s format without running the pipeline."""

from __future__ import annotations

from pathlib import Path

from c4clean.cleaning.page import Page
from c4clean.cleaning.wet import iter_records
from c4clean.pipelines.arrow_sink import write_shard

SAMPLE_WET = Path(__file__).resolve().parents[1] / "sample_data" / "wet"


def sample_pages(repeat: int = 1) -> list[Page]:
    """Every page of the sample WET files with some text, `repeat` times over."""
    pages = [
        record
        for path in sorted(SAMPLE_WET.glob("*.wet.gz"))
        for record in iter_records(str(path))
        if isinstance(record, Page) and record.text.strip()
    ]
    return pages * repeat


def write_sample_shards(out_dir: Path, repeat: int = 1, num_shards: int = 1, split: str = "train") -> Path:
    """`split-00000-of-0000n.arrow`, ... holding `sample_pages(repeat)`, dealt round-robin."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = sample_pages(repeat)
    for index in range(num_shards):
        write_shard(str(out_dir), split, index, num_shards, pages[index::num_shards])
    return out_dir
