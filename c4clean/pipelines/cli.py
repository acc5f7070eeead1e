"""`c4clean run` and `c4clean stats`."""

from __future__ import annotations

import logging
import os
import sys

import click

from c4clean.cli_options import input_option, verbosity
from c4clean.pipelines import output_folder
from c4clean.pipelines.options import (
    DEFAULT_CC_BASE_URL,
    DEFAULT_FORMAT,
    FORMATS,
    LANGID_BACKENDS,
    VARIANTS,
    RunOptions,
)
from c4clean.pipelines.runner import RUNNER_NAMES, runner_name


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--input",
    "inputs",
    multiple=True,
    help="WET file, directory or glob (repeatable); local, gs://, s3:// ...",
)
@click.option("--output", required=True, help="Output folder for shards, manifest.json, stats.json.")
@click.option("--variant", type=click.Choice(list(VARIANTS)), default="en", show_default=True)
@click.option(
    "--format",
    "shard_format",
    type=click.Choice(FORMATS),
    default=DEFAULT_FORMAT,
    show_default=True,
    help="Text shards: arrow (Arrow IPC, memory-mapped) or parquet (zstd, streaming row groups).",
)
@click.option(
    "--langid",
    type=click.Choice(LANGID_BACKENDS),
    help="Language id of --variant multilingual: cld3 (mC4's, the default) or langdetect.",
)
@click.option("--cc-dump", help="Common Crawl dump to download, e.g. 2019-18.")
@click.option("--cc-base-url", default=DEFAULT_CC_BASE_URL, show_default=True)
@click.option("--max-files", type=int, help="Only the first N WET files of --cc-dump.")
@click.option("--cache-dir", help="Download cache for --cc-dump (default ~/.cache/c4clean/wet).")
@click.option(
    "--near-dedup/--no-near-dedup",
    default=True,
    show_default=True,
    help="MinHash near-duplicate removal; off reproduces TFDS C4 exactly.",
)
@click.option("--near-dedup-threshold", type=float, default=0.8, show_default=True)
@click.option(
    "--near-dedup-normalize",
    default="nfkc",
    show_default=True,
    help="Shingle text: nfkc (NFKC, quotes/dashes unified, punctuation stripped, digits mapped) or none.",
)
@click.option("--num-perm", type=int, default=128, show_default=True)
@click.option("--ngram", type=int, default=5, show_default=True)
@click.option("--num-shards", type=int, default=8, show_default=True, help="Shards per train split.")
@click.option("--num-validation-shards", type=int, default=1, show_default=True)
@click.option(
    "--domains",
    type=click.Path(exists=True, dir_okay=False),
    help="Keep only these domains (RealNews JSON or one domain per line).",
)
@click.option(
    "--webtext-urls",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="URL list file(s) for --variant webtextlike.",
)
@click.option("--resume", is_flag=True, help="Reuse per-file results of an interrupted run.")
@click.option("--strict", is_flag=True, help="Exit 1 if any input file had a read error (data lost).")
@click.option("--keep-work", is_flag=True, help="Keep <output>/.work (per-file results).")
@click.option(
    "--workers",
    type=int,
    default=os.cpu_count() or 1,
    show_default=True,
    help="Local worker processes (DirectRunner).",
)
@click.option(
    "--runner",
    default="direct",
    show_default=True,
    help="direct, dask, dataflow, flink, spark, portable, or a Beam runner class name.",
)
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED)
def run(
    inputs,
    output,
    variant,
    shard_format,
    langid,
    cc_dump,
    cc_base_url,
    max_files,
    cache_dir,
    near_dedup,
    near_dedup_threshold,
    near_dedup_normalize,
    num_perm,
    ngram,
    num_shards,
    num_validation_shards,
    domains,
    webtext_urls,
    resume,
    strict,
    keep_work,
    workers,
    runner,
    beam_args,
):
    """Clean WET files into sharded Arrow or Parquet files (C4 recipe + MinHash near-dedup).

    Beam pipeline options go after `--`, e.g. `-- --project=p --region=europe-west1
    --temp_location=gs://b/tmp --num_workers=50`.
    """
    from c4clean.pipelines import pipeline

    # One progress display by default (-q: none); the engines' own log lines only with -v.
    if verbosity() <= 0:
        for engine in ("apache_beam", "distributed", "dask"):
            logging.getLogger(engine).setLevel(logging.ERROR)
        for handler in logging.getLogger().handlers:
            handler.addFilter(_not_an_interrupt)
    try:
        options = RunOptions(
            output=output,
            inputs=tuple(inputs),
            variant=variant,
            format=shard_format,
            langid=langid,
            cc_dump=cc_dump,
            cc_base_url=cc_base_url,
            max_files=max_files,
            cache_dir=cache_dir,
            near_dedup=near_dedup,
            near_dedup_threshold=near_dedup_threshold,
            near_dedup_normalize=near_dedup_normalize,
            num_perm=num_perm,
            ngram=ngram,
            num_shards=num_shards,
            num_validation_shards=num_validation_shards,
            domains=domains,
            webtext_urls=tuple(webtext_urls),
            resume=resume,
            strict=strict,
            keep_work=keep_work,
            workers=workers,
            runner=runner,
            beam_args=tuple(beam_args),
        )
    except ValueError as error:
        raise click.UsageError(str(error))
    _check_runner(runner)
    output_folder.check(output)
    free_at_start = output_folder.free_bytes(output)
    from c4clean.pipelines.runner import RunFailed, RunnerUnavailable

    try:
        with output_folder.lock(output):
            outcome = pipeline.run(options, echo=click.echo, progress=verbosity() >= 0)
    except (FileNotFoundError, RunnerUnavailable, RunFailed) as error:
        raise click.ClickException(str(error))
    except Exception as error:
        if output_folder.is_remote(output) or not output_folder.is_disk_full(error):
            raise
        raise click.ClickException(
            output_folder.disk_full_message(output, free_at_start, _input_bytes(inputs))
        ) from error
    sys.exit(outcome.exit_code)


def _not_an_interrupt(record: logging.LogRecord) -> bool:
    """False for a log record of a Ctrl-C (Beam logs an interrupt met inside a DoFn as an error, with
    its traceback): the run says it was interrupted in its own line."""
    kind = record.exc_info[0] if record.exc_info else None
    return not (kind and issubclass(kind, KeyboardInterrupt))


def _check_runner(runner: str) -> None:
    if runner.lower() in RUNNER_NAMES or "." in runner:
        return
    from apache_beam.runners.runner import _RUNNER_MAP

    name = runner_name(runner).lower()
    if {name, name + "runner"} & set(_RUNNER_MAP):
        return
    raise click.BadParameter(
        f"unknown runner {runner!r}: one of {', '.join(RUNNER_NAMES)}, a Beam runner name "
        "(DataflowRunner, ...) or the full name of a PipelineRunner class",
        param_hint="--runner",
    )


def _input_bytes(inputs) -> int:
    from c4clean.pipelines.pipeline import expand_inputs

    try:
        files = expand_inputs(inputs) if inputs else []
    except (OSError, ValueError):
        return 0
    return sum(os.path.getsize(f) for f in files if "://" not in f and os.path.isfile(f))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("directory_arg", metavar="[DIRECTORY]", required=False)
@input_option("directory", help="Output folder of `c4clean run` (or give it as DIRECTORY).")
@click.option(
    "--counters/--no-counters",
    default=True,
    show_default=True,
    help="Also print every counter of every stage.",
)
def stats(directory_arg, directory, counters):
    """Print the manifest and counters of an existing `c4clean run` output."""
    if (directory is None) == (directory_arg is None):
        raise click.UsageError("give the folder once: --input DIR (or as DIRECTORY)")
    directory = directory or directory_arg
    from c4clean.formats import FormatError
    from c4clean.pipelines import manifest as m

    try:
        manifest, run_stats = m.load_output(directory)
    except (FileNotFoundError, FormatError) as error:
        raise click.ClickException(str(error))
    options = manifest["options"]
    click.echo(
        f"{directory}: variant {manifest['variant']}, {manifest.get('format', 'arrow')} shards "
        f"({manifest['format_version']}), "
        f"near-dedup {'on' if options.get('near_dedup') else 'off'}, "
        f"{len(manifest['inputs'])} input files, {manifest['wall_seconds']} s"
    )
    click.echo("versions: " + ", ".join(f"{k} {v}" for k, v in manifest["versions"].items()))
    click.echo(m.splits_table(manifest))
    if run_stats is None:
        click.echo("(no stats.json)")
        return
    click.echo(m.summary_table(run_stats))
    from c4clean.pipelines.histograms import PNG

    click.echo(m.histograms_section(run_stats["counters"], os.path.join(directory, PNG)))
    if run_stats.get("read_issues"):
        click.echo(
            "read issues: "
            + ", ".join(f"{f} ({len(v)})" for f, v in sorted(run_stats["read_issues"].items()))
        )
    if counters:
        click.echo(m.counters_table(run_stats))
    from apache_beam.io.filesystems import FileSystems

    from c4clean.pipelines import near_dedup_audit as audit

    audit_path = FileSystems.join(directory, audit.AUDIT_FILE)
    if FileSystems.exists(audit_path):
        with FileSystems.open(audit_path) as f:
            click.echo(audit.summary_text(audit.summarize(audit.read_rows(f.read()))))
