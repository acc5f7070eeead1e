"""`c4clean run`: the Beam graph of a variant, and a run from inputs to a committed output folder.

Order (TFDS c4 v3.1.0 `_get_pages_pcollection`, then the splits):
read -> length filter -> [domain list] -> URL normalize + newest page per URL -> [URL list join]
-> [paragraph filter] -> [clean_page] -> [MinHash near-dedup (options.NEAR_DEDUP_POSITION says why)]
-> [line dedup, then >= 3 sentences when cleaned] -> language id -> [bad words] -> split -> shards.

The first four steps and the per-page rule (clean_page / paragraph filter) run per input file and are
saved in `<output>/.work/files/` (see `perfile`): their verdicts are applied at C4's position.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import time
from typing import Optional

from c4clean import lazy
from c4clean.cleaning import reasons
from c4clean.pipelines import manifest, perfile, runner
from c4clean.pipelines.options import RunOptions

log = logging.getLogger(__name__)

WET_SUFFIXES = (".wet", ".wet.gz")


def expand_inputs(inputs) -> list[str]:
    """Files of `--input`s: a directory gives its WET files (`*.wet`, `*.wet.gz`, recursively);
    a glob or a file is taken as it is. Any Beam filesystem path works (local, gs://, s3://)."""
    files: list[str] = []
    for spec in inputs:
        spec = str(spec)
        if "://" not in spec and os.path.isdir(spec):
            for root, _, names in os.walk(spec):
                files += [os.path.join(root, n) for n in names if n.endswith(WET_SUFFIXES)]
            continue
        from apache_beam.io.filesystems import FileSystems  # a directory needs no Beam (`early_staging`)

        is_pattern = any(c in spec for c in "*?[")
        matched = [m.path for m in FileSystems.match([spec])[0].metadata_list]
        if not is_pattern and not matched:
            # A prefix of a remote store, like a directory.
            prefix = spec.rstrip("/") + "/*"
            matched = [
                m.path for m in FileSystems.match([prefix])[0].metadata_list if m.path.endswith(WET_SUFFIXES)
            ]
        if not matched:
            raise FileNotFoundError(f"--input {spec}: no such file, directory or matching files")
        files += matched
    return sorted(dict.fromkeys(files))


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "c4clean", "wet")


def plan_inputs(options: RunOptions) -> tuple[list[tuple[str, str]], Optional[str]]:
    """[(input id, location)] and the download cache (None for local/filesystem inputs)."""
    planned = [(path, path) for path in expand_inputs(options.inputs)] if options.inputs else []
    cache = None
    if options.cc_dump:
        from c4clean.pipelines.download import wet_paths_for_dump

        urls = wet_paths_for_dump(options.cc_dump, options.cc_base_url, options.max_files)
        planned += [(url, url) for url in urls]
        cache = options.cache_dir or default_cache_dir()
    return planned, cache


def audit_staging_path(options: RunOptions) -> str:
    """Where near-dedup stages near_duplicates.jsonl; `manifest.commit` moves it beside the shards."""
    from c4clean.pipelines.near_dedup_audit import AUDIT_FILE

    return options.layout.staged(AUDIT_FILE)


def per_file_settings(options: RunOptions) -> perfile.PerFileSettings:
    recipe = options.recipe
    return perfile.PerFileSettings(
        files_dir=options.layout.files_dir,
        signature=options.per_file_signature(),
        clean=recipe.clean,
        paragraph_filter=recipe.paragraph_filter,
        domain_filter=options.domain_filter,
        resume=options.resume,
    )


def stage_inputs(options: RunOptions, planned, download_cache: Optional[str]):
    """The first stage of a run: each input file staged (`perfile`)."""
    from c4clean.pipelines.transforms import StageInputFiles

    return StageInputFiles(planned, per_file_settings(options), download_cache)


def build_pipeline(options: RunOptions, planned=None, download_cache: Optional[str] = None):
    """The Beam pipeline of `options` (over `planned` inputs, by default `plan_inputs(options)`);
    shards and the run's counts land in `options.layout.staging_dir`, and `manifest.commit` moves
    the shards into place. The pages stay in their staged files until their last pass (`passes`)."""
    import apache_beam as beam

    from c4clean.cleaning import minhash
    from c4clean.pipelines import near_dedup, passes
    from c4clean.pipelines import transforms as t
    from c4clean.pipelines.counting import Counted, WriteCounts
    from c4clean.pipelines.pool import Pooled

    if planned is None:
        planned, download_cache = plan_inputs(options)
    recipe = options.recipe
    pipeline = beam.Pipeline(
        runner=runner.make_runner(options.runner, options.workers),
        options=runner.pipeline_options(options.runner, options.beam_args),
    )
    files = pipeline | "PerFileStage" >> stage_inputs(options, planned, download_cache)
    winners = files | "UrlDedup" >> t.NewestPagePerUrl(
        t.URL_SHARDS_PER_FILE * len(planned),
        options.layout.keys_dir,
        options.webtext_urls if recipe.webtextlike else (),
    )
    decisions = {"path": files, "winner": winners}

    # The passes: each applies the decisions so far and emits what the next global step needs.
    after = passes.pass_plan(options)
    rule_namespace = (
        reasons.NS_CLEAN if recipe.clean else reasons.NS_PARAGRAPH if recipe.paragraph_filter else None
    )
    bands, rows = minhash.recall_bands(options.near_dedup_threshold, options.num_perm)
    plan = passes.PassPlan(
        emit=after[0],
        rules_namespace=rule_namespace,
        min_num_sentences=recipe.min_num_sentences,
        minhash=(
            options.num_perm,
            minhash.DEFAULT_SEED,
            options.ngram,
            options.near_dedup_normalize,
            bands,
            rows,
        ),
        # A key shard then holds about as many band entries as one file has pages.
        key_shards=passes.KEY_SHARDS_PER_FILE * len(planned),
        recipe=recipe,
        language_id=options.language_id,
        progress_dir=options.layout.passes_dir,
        pieces_dir=options.layout.pieces_dir,
        keys_dir=options.layout.keys_dir,
        shards_for=options.shards_for,
    )
    for i, (emit, parts) in enumerate(zip(after, passes.pass_parts(options, len(planned)))):
        plan = dataclasses.replace(plan, emit=emit, index=i, parts=parts)
        outputs = (
            dict(decisions)
            | f"JoinDecisions{i}" >> beam.CoGroupByKey()
            | f"Parts{i}" >> beam.FlatMap(passes.in_parts, parts)
            | f"Pass{i}"
            >> Counted(
                Pooled(passes.FilePass(plan), order=passes.largest_first),
                tags=(passes.BANDS, passes.LINES),
                main=passes.FINAL,
            )
        )
        # Each step's outcome is counted by the first pass after it only.
        plan = dataclasses.replace(plan, rules_namespace=None, count_near_dedup=False)
        if emit == passes.BANDS:
            removed = outputs[passes.BANDS] | "NearDedup" >> near_dedup.NearDuplicates(
                passes.TextsOfPages(files, options.layout.keys_dir),
                options.near_dedup_threshold,
                options.ngram,
                options.near_dedup_normalize,
                audit_path=audit_staging_path(options),
                node_shards=len(planned),
                spill_dir=options.layout.keys_dir,
            )
            decisions["removed"] = removed | "RemovedRefs" >> beam.Map(passes.page_ref)
            plan = dataclasses.replace(plan, after_near_dedup=True, count_near_dedup=True)
        elif emit == passes.LINES:
            decisions["lost"] = outputs[passes.LINES] | "LineDedup" >> passes.LostLines()
            plan = dataclasses.replace(plan, after_line_dedup=True)
    _ = outputs[passes.FINAL] | "Shards" >> t.WriteShards(options.layout.staging_dir, options.format)
    # Last: every step that counts is built by now.
    _ = pipeline | "Counts" >> WriteCounts(options.layout.counts)
    return pipeline


def _prepare_output(options: RunOptions) -> None:
    """Clears the shard staging folder (never the per-file results `--resume` relies on)."""
    from apache_beam.io.filesystems import FileSystems

    if not FileSystems.exists(options.output):
        FileSystems.mkdirs(options.output)
    stage = options.layout.staging_dir
    if FileSystems.exists(stage):
        FileSystems.delete([stage])


# Sentences enough for every per-page step to load what it loads on first use.
_WARM_UP_TEXT = "\n".join(f"This is line {n} of a page that warms up the cleaning steps." for n in range(6))


def _warm_up_page():
    from c4clean.cleaning.page import Page

    return Page(url="https://example.com/warm-up", text=_WARM_UP_TEXT, normalized_url="example.com/warm-up")


def warm_up_staging(options: RunOptions) -> None:
    """Runs the per-file steps of `options` on one sample page, so that the models and tables they load
    on first use (Punkt) are in this process before it forks the early stager and the local workers,
    which then share them instead of each loading its own."""
    from c4clean.cleaning.sentences import punkt_tokenizer

    if options.recipe.clean:  # clean_page runs Punkt only for a page of few lines, which the sample is not
        punkt_tokenizer()
    page = _warm_up_page()
    rules = perfile.PageRules(per_file_settings(options))
    for step in rules.filters:
        step.apply(page)
    rules.stage(page)


def warm_up_last_pass(options: RunOptions) -> None:
    """The same for the steps of the last pass (language id, bad words), before the workers fork."""
    from c4clean.pipelines import steps

    steps.run_steps(
        steps.final_steps(options.recipe, options.language_id), [_warm_up_page()], lambda *_: None
    )


@contextlib.contextmanager
def _local_workers(options: RunOptions, planned, download_cache: Optional[str]):
    """The local worker processes of a run (`pool`), if it has any; they start staging the input
    files at once, while this process builds the pipeline, and end with the run. Before this process
    imports Beam, it forks the early stager (`early_staging`)."""
    workers = min(options.workers, len(planned))  # the work is per file: more workers would idle
    if not runner.uses_local_pool(options.runner, workers):
        runner.import_beam()
        _prepare_output(options)
        yield
        return
    from c4clean.pipelines import early_staging
    from c4clean.process_group import children_end_with_this_process

    settings = per_file_settings(options)
    with contextlib.ExitStack() as stack:
        stack.enter_context(children_end_with_this_process())
        warm_up_staging(options)
        if early_staging.usable(planned, download_cache, settings.files_dir):
            stack.enter_context(early_staging.early_stager(perfile.staging_elements(planned), settings))
        runner.import_beam()
        _prepare_output(options)
        from c4clean.pipelines import passes, pool, transforms  # noqa: F401 - imported once, before the fork

        warm_up_last_pass(options)
        started = stack.enter_context(pool.local_pool(workers))
        staging = stage_inputs(options, planned, download_cache)
        started.prefetch(staging.LABEL, staging.dofn, staging.elements)
        yield


# Python collects its youngest objects every 700 net allocations of containers, and older ones every 10
# collections of the younger: over a run's pages, Beam's elements and language id's caches, which reference
# counting frees anyway, that walked the heap 2,200 times, 3.5 s of a 55-s 1-worker run on the bench corpus.
# Collecting 70x less often: 0.9 s, the same peak memory.
RUN_GC_THRESHOLDS = (50_000, 20, 20)


@contextlib.contextmanager
def _fewer_collections():
    """Python's garbage collector at `RUN_GC_THRESHOLDS` while a run goes on (its workers fork with them)."""
    before = gc.get_threshold()
    gc.set_threshold(*RUN_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _progress(options: RunOptions, planned, shown: bool):
    if not shown:
        return contextlib.nullcontext()
    from c4clean.pipelines.progress import RunProgress

    return RunProgress(options, planned)


def run(options: RunOptions, echo=print, progress: bool = False) -> manifest.RunOutcome:
    """Runs the pipeline and commits its output; returns what happened (counts, issues, exit code).
    `progress`: show the progress display (`progress.RunProgress`) on stderr while it runs."""
    started = time.time()
    runner.check_runner(options.runner, options.beam_args)
    planned, cache = plan_inputs(options)
    if not planned:
        raise FileNotFoundError("no input files")
    message = (
        f"c4clean run: variant {options.variant}, {len(planned)} input files, near-dedup "
        f"{'on' if options.near_dedup else 'off'}, runner {options.runner} ({options.workers} workers)"
    )
    echo(message) if progress else log.info(message)
    with _fewer_collections(), _local_workers(options, planned, cache):
        from c4clean.pipelines.histograms import load_plotting_in_background

        load_plotting_in_background()  # after the workers' fork: a process with threads must not fork
        with lazy.left_out(runner.PIPELINE_LEFT_OUT):
            pipeline = build_pipeline(options, planned, cache)
            with _progress(options, planned, progress):
                pipeline.run().wait_until_finish()
    return manifest.commit(options, planned, started, echo=echo)
