"""Committing a run's output, and describing it: manifest.json, stats.json, report.md, summary table.

`commit` runs in the driver after the pipeline: it completes the shard set (empty shards for splits
with fewer pages than shards), renames the staged shards to their final names, then writes stats,
report and, last, manifest.json, so a manifest always describes the complete shards beside it.
What they say is computed by the pure `build_stats`, `build_manifest` and `render_report` from the
pipeline's own counts (`counting`, never runner metrics), the shard records and the per-file
summaries.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import time
from importlib import metadata
from typing import Callable, Optional

from c4clean import atomic, formats, markdown
from c4clean.cleaning import reasons
from c4clean.formats import DATA_DIR, MANIFEST, STATS
from c4clean.pipelines import arrow_sink, dataset_card, histograms, perfile
from c4clean.pipelines.layout import RunLayout
from c4clean.pipelines.options import RunOptions

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunOutcome:
    manifest: dict
    stats: dict
    exit_code: int


def versions() -> dict[str, str]:
    import c4clean

    found = {"c4clean": c4clean.__version__, "python": platform.python_version()}
    for package in ("apache-beam", "pyarrow", "langdetect", "cld3-py", "nltk", "datasketch", "tldextract"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def stage_rows(counters: dict) -> list[dict]:
    """Summary rows (stage, pages in/out, text bytes out, CPU seconds of the stage's functions
    summed over workers) in pipeline order."""
    from c4clean.pipelines.steps import STAGE_ORDER

    stages = counters.get(reasons.NS_STAGES, {})
    rows = []
    for stage in STAGE_ORDER:
        if f"{stage}:in" not in stages and f"{stage}:out" not in stages:
            continue
        us = stages.get(f"{stage}:us")
        rows.append(
            {
                "stage": stage,
                "pages_in": stages.get(f"{stage}:in", 0),
                "pages_out": stages.get(f"{stage}:out", 0),
                "bytes_out": stages.get(f"{stage}:bytes"),
                "seconds": None if us is None else round(us / 1e6, 2),
            }
        )
    return rows


def _cell(value) -> str:
    """Numbers with thousands separators (1,234,567), so counts read at a glance."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def format_table(header: list[str], rows: list[list]) -> str:
    return markdown.table(header, [[_cell(v) for v in row] for row in rows], aligned=True)


def summary_table(stats: dict, cpu_seconds: bool = True) -> str:
    header = ["stage", "pages in", "pages out", "text bytes out"] + (["cpu s"] if cpu_seconds else [])
    rows = [
        [r["stage"], r["pages_in"], r["pages_out"], r["bytes_out"]] + ([r["seconds"]] if cpu_seconds else [])
        for r in stats["stages"]
    ]
    return format_table(header, rows)


def splits_table(manifest: dict) -> str:
    rows = [
        [split, info["pages"], info.get("words"), info["shards"], info["text_bytes"]]
        for split, info in manifest["splits"].items()
    ]
    return format_table(["split", "pages", "tokens (words)", "shards", "text bytes"], rows)


def histograms_section(counters: dict, png: str = histograms.PNG) -> str:
    """Page length and lines per page before / after cleaning: the PNG and its numbers."""
    parts = [f"![Page length and lines per page, before and after cleaning]({png})"]
    for title, rows in histograms.table(histograms.from_counters(counters)):
        parts.append(format_table([title, "pages before cleaning", "pages after cleaning"], rows))
    return "\n\n".join(parts)


def counters_table(stats: dict) -> str:
    rows = [[ns, name, value] for ns, names in stats["counters"].items() for name, value in names.items()]
    return format_table(["namespace", "counter", "value"], rows)


def _write_json(path: str, data: dict) -> None:
    atomic.write_bytes_fs(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def _list(pattern: str) -> list[str]:
    from apache_beam.io.filesystems import FileSystems

    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def _complete_shards(options: RunOptions, layout: RunLayout) -> list[dict]:
    """Shard records of the staging folder, with empty shards added so every split is complete."""
    records = [
        perfile.read_json(p)
        for p in _list(layout.staging_dir.rstrip("/") + "/*.json")
        if formats.parse_shard_name(p[: -len(".json")])
    ]
    splits = {"train", "validation"} if options.recipe.english_only else set()
    splits |= {r["split"] for r in records}
    have = {(r["split"], r["shard"]) for r in records}
    for split in sorted(splits):
        n = options.shards_for(split)
        for index in range(n):
            if (split, index) not in have:
                records.append(
                    arrow_sink.write_shard(layout.staging_dir, split, index, n, [], options.format)
                )
    return sorted(records, key=lambda r: (r["split"], r["shard"]))


def _move_shards(layout: RunLayout, records: list[dict]) -> None:
    from apache_beam.io.filesystems import FileSystems

    if not FileSystems.exists(layout.data_dir):
        FileSystems.mkdirs(layout.data_dir)
    keep = {r["file"] for r in records}
    FileSystems.rename(
        [layout.staged(r["file"]) for r in records], [layout.shard(r["file"]) for r in records]
    )
    # Shards of an earlier run: in data/, or beside manifest.json where outputs before data/ had them.
    stale = [p for p in _list(layout.output.rstrip("/") + "/*") if formats.parse_shard_name(p)]
    stale += [
        p
        for p in _list(layout.data_dir.rstrip("/") + "/*")
        if formats.parse_shard_name(p) and p.rsplit("/", 1)[-1] not in keep
    ]
    if stale:
        log.info("removing %d shards of an earlier run", len(stale))
        FileSystems.delete(stale)


def _input_summaries(options: RunOptions, planned) -> dict[str, Optional[perfile.FileSummary]]:
    """{input id: its per-file summary, or None when the pipeline left none}."""
    signature = options.per_file_signature()
    found = {}
    for input_id, _ in planned:
        _, json_path = perfile.work_paths(options.layout.files_dir, input_id, signature)
        found[input_id] = perfile.read_summary(json_path)
    return found


def read_counts(layout: RunLayout) -> dict[str, dict[str, int]]:
    """The pipeline's counts ({namespace: {name: total}}) written by `counting.WriteCounts`."""
    counts = perfile.read_json(layout.counts)
    if counts is None:
        raise RuntimeError(f"the pipeline finished without writing its counts ({layout.counts})")
    return counts


def build_stats(counters: dict, summaries: dict, wall_seconds: float) -> dict:
    issues = {name: s.issues for name, s in summaries.items() if s is not None and s.issues}
    errors = sorted(
        f
        for f, found in issues.items()
        if any(i["code"].startswith(reasons.READ_ERROR_PREFIX) for i in found)
    )
    return {
        **formats.TEXT_SHARDS.stamp(),
        "counters": counters,
        "stages": stage_rows(counters),
        "read_issues": issues,
        "files_with_issues": sorted(issues),
        "files_with_errors": errors,
        "wall_seconds": wall_seconds,
    }


def build_manifest(
    options: RunOptions, records: list[dict], summaries: dict, started: float, wall_seconds: float
) -> dict:
    splits: dict[str, dict] = {}
    for r in records:
        info = splits.setdefault(r["split"], {"pages": 0, "shards": 0, "text_bytes": 0, "words": 0})
        info["pages"] += r["rows"]
        info["shards"] += 1
        info["text_bytes"] += r["text_bytes"]
        info["words"] += r["words"]
    inputs = []
    for name, s in summaries.items():
        if s is None:
            inputs.append({"file": name, "size": None, "pages": None, "issues": 0})
        else:
            size = (s.identity or {}).get("size")
            inputs.append({"file": name, "size": size, "pages": s.pages, "issues": len(s.issues)})
    return {
        **formats.TEXT_SHARDS.stamp(),
        "variant": options.variant,
        "format": options.format,
        "data_dir": DATA_DIR,  # the shards' folder, relative to this manifest
        "options": options.as_manifest(),
        "versions": versions(),
        "created_unix": int(started),
        "wall_seconds": wall_seconds,
        "inputs": inputs,
        "splits": splits,
        "shards": [
            {k: r[k] for k in ("file", "split", "shard", "num_shards", "rows", "bytes", "sha256")}
            for r in records
        ],
        "schema": [
            {"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in formats.text_schema()
        ],
    }


def pages_out(manifest: dict) -> int:
    return sum(i["pages"] for i in manifest["splits"].values())


def render_report(options: RunOptions, stats: dict, manifest: dict) -> str:
    errors = stats["files_with_errors"]
    others = sorted(set(stats["files_with_issues"]) - set(errors))
    parts = [
        f"# c4clean run: {options.variant}",
        f"{len(manifest['inputs']):,} input files, {pages_out(manifest):,} pages out, "
        f"{stats['wall_seconds']:,} s wall time, near-dedup {'on' if options.near_dedup else 'off'}.",
        summary_table(stats),
        splits_table(manifest),
        histograms_section(stats["counters"]),
        "Files with read errors: " + (", ".join(errors) if errors else "none") + ".",
        "Files with other read issues (notes, repairs): " + (", ".join(others) or "none") + ".",
    ]
    return "\n\n".join(parts) + "\n"


def render_card(stats: dict, manifest: dict) -> str:
    # no CPU seconds in the card: its bytes depend on the data alone, like the shards'
    table = summary_table(stats, cpu_seconds=False)
    return dataset_card.render(manifest, table, splits_table(manifest), data_dir=DATA_DIR)


def commit(options: RunOptions, planned, started: float, echo: Callable[[str], None] = print) -> RunOutcome:
    """Moves the staged shards into place and writes stats.json, report.md, histograms.png, the
    dataset card and manifest.json (last)."""
    from apache_beam.io.filesystems import FileSystems

    layout = options.layout
    if FileSystems.exists(layout.manifest):
        FileSystems.delete([layout.manifest])  # the old manifest no longer describes the shards
    counters = read_counts(layout)
    records = _complete_shards(options, layout)
    _move_shards(layout, records)
    for folder in (layout.pieces_dir, layout.keys_dir):  # merged into the shards / read by the dedups
        if FileSystems.exists(folder):
            FileSystems.delete([folder])
    from c4clean.pipelines.near_dedup import commit_audit

    commit_audit(layout.staging_dir, layout.output)
    summaries = _input_summaries(options, planned)
    missing = [name for name, s in summaries.items() if s is None]
    elapsed = round(time.time() - started, 2)
    stats = build_stats(counters, summaries, elapsed)
    manifest = build_manifest(options, records, summaries, started, elapsed)
    _write_json(layout.stats, stats)
    atomic.write_bytes_fs(layout.report, render_report(options, stats, manifest).encode("utf-8"))
    png = histograms.plot(histograms.from_counters(counters))
    atomic.write_bytes_fs(layout.histograms, png)
    atomic.write_bytes_fs(layout.card, render_card(stats, manifest).encode("utf-8"))
    _write_json(layout.manifest, manifest)
    if not options.keep_work and not missing:
        FileSystems.delete([layout.work_dir])
    errors = stats["files_with_errors"]
    echo(summary_table(stats))
    echo(splits_table(manifest))
    echo(f"{pages_out(manifest)} pages in {len(records)} shards written to {layout.output} in {elapsed} s")
    if errors:
        echo(f"read errors in {len(errors)} file(s): {', '.join(errors)} (see {STATS})")
    if missing:
        echo(f"no per-file result for: {', '.join(missing)}")
    failed = bool(missing) or (options.strict and bool(errors))
    return RunOutcome(manifest, stats, 1 if failed else 0)


def load_output(directory: str) -> tuple[dict, Optional[dict]]:
    """(manifest, stats) of an existing output folder; stats may be absent."""
    from apache_beam.io.filesystems import FileSystems

    manifest = perfile.read_json(FileSystems.join(directory, MANIFEST))
    if manifest is None:
        raise FileNotFoundError(f"{directory}: no {MANIFEST} (not a finished c4clean output)")
    formats.TEXT_SHARDS.check(manifest, FileSystems.join(directory, MANIFEST))
    return manifest, perfile.read_json(FileSystems.join(directory, STATS))
