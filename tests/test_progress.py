"""The progress display counts every input file's staging and passes, so it ends full."""

from __future__ import annotations

import io

import pytest

from c4clean.pipelines import passes, pipeline
from c4clean.pipelines.options import RunOptions
from c4clean.pipelines.progress import RunProgress


@pytest.mark.parametrize("workers", [1, 2])  # 2: the last pass in parts (`passes.pass_parts`)
def test_progress_counts_staging_and_every_pass_of_every_file(sample_wet, tmp_path, workers):
    options = RunOptions(output=str(tmp_path / "out"), inputs=(str(sample_wet),), workers=workers)
    planned, _ = pipeline.plan_inputs(options)
    stream = io.StringIO()
    pipeline._prepare_output(options)
    with RunProgress(options, planned, stream=stream) as progress:
        pipeline.build_pipeline(options, planned).run().wait_until_finish()
    done, total = progress.steps
    assert total == len(planned) * (1 + len(passes.pass_plan(options))) == done
    assert len(passes.pass_plan(options)) == 3  # signatures, line keys, language id and shards
    assert "file step" in stream.getvalue() and "pages read" in stream.getvalue()
    assert "passes done" in stream.getvalue().rsplit("\r", 1)[-1]  # the last state says it is over
    assert (passes.pass_parts(options, len(planned))[-1] > 1) == (workers == 2)
