"""The progress display counts every input file's staging and passes, so it ends full."""

from __future__ import annotations

import io

from c4clean.pipelines import passes, pipeline
from c4clean.pipelines.options import RunOptions
from c4clean.pipelines.progress import RunProgress


def test_progress_counts_staging_and_every_pass_of_every_file(sample_wet, tmp_path):
    options = RunOptions(output=str(tmp_path / "out"), inputs=(str(sample_wet),), workers=1)
    planned, _ = pipeline.plan_inputs(options)
    stream = io.StringIO()
    pipeline._prepare_output(options)
    with RunProgress(options, planned, stream=stream) as progress:
        pipeline.build_pipeline(options, planned).run().wait_until_finish()
    done, total = progress.steps
    assert total == len(planned) * (1 + len(passes.pass_plan(options))) == done
    assert len(passes.pass_plan(options)) == 3  # signatures, line keys, language id and shards
    assert "file step" in stream.getvalue() and "pages read" in stream.getvalue()
