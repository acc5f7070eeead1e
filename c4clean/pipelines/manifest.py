"""Committing a run's output, and describing it: manifest.json, stats.json, report.md, summary table.

`commit` runs in the driver after the pipeline: it completes the shard set (empty shards for splits
with fewer pages than shards), renames the staged shards to their final names, then writes stats,
report and, last, manifest.json, so a manifest always describes the complete shards beside it.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import platform
import time
from importlib import metadata
from typing import Callable, Optional

from c4clean import atomic, formats, markdown
from c4clean.cleaning import reasons
from c4clean.formats import MANIFEST, REPORT, STATS
from c4clean.pipelines import arrow_sink, perfile
from c4clean.pipelines.options import RunOptions

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunOutcome:
    manifest: dict
    stats: dict
    exit_code: int


def counters_from_result(result) -> dict[str, dict[str, int]]:
    """{namespace: {name: value}} of every Beam counter (committed values where the runner has them)."""
    out: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for entry in result.metrics().query()["counters"]:
        try:
            value = entry.committed
        except Exception:  # noqa: BLE001 - some runners only report attempted values
            value = None
        if value is None:
            value = entry.attempted
        name = entry.key.metric
        out[name.namespace][name.name] = out[name.namespace].get(name.name, 0) + int(value)
    return {ns: dict(sorted(names.items())) for ns, names in sorted(out.items())}


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
    from c4clean.pipelines.transforms import STAGE_ORDER

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


def summary_table(stats: dict) -> str:
    rows = [
        [r["stage"], r["pages_in"], r["pages_out"], r["bytes_out"], r["seconds"]] for r in stats["stages"]
    ]
    return format_table(["stage", "pages in", "pages out", "text bytes out", "cpu s"], rows)


def splits_table(manifest: dict) -> str:
    rows = [
        [split, info["pages"], info.get("words"), info["shards"], info["text_bytes"]]
        for split, info in manifest["splits"].items()
    ]
    return format_table(["split", "pages", "tokens (words)", "shards", "text bytes"], rows)


def counters_table(stats: dict) -> str:
    rows = [[ns, name, value] for ns, names in stats["counters"].items() for name, value in names.items()]
    return format_table(["namespace", "counter", "value"], rows)


def _write_json(path: str, data: dict) -> None:
    atomic.write_bytes_fs(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def _list(pattern: str) -> list[str]:
    from apache_beam.io.filesystems import FileSystems

    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def _complete_shards(options: RunOptions, stage: str) -> list[dict]:
    """Shard records of the staging folder, with empty shards added so every split is complete."""
    records = [
        perfile.read_json(p)
        for p in _list(stage.rstrip("/") + "/*.json")
        if formats.parse_shard_name(p[: -len(".json")])
    ]
    splits = {"train", "validation"} if options.recipe.english_only else set()
    splits |= {r["split"] for r in records}
    have = {(r["split"], r["shard"]) for r in records}
    for split in sorted(splits):
        n = options.shards_for(split)
        for index in range(n):
            if (split, index) not in have:
                records.append(arrow_sink.write_shard(stage, split, index, n, [], options.format))
    return sorted(records, key=lambda r: (r["split"], r["shard"]))


def _move_shards(options: RunOptions, stage: str, records: list[dict]) -> None:
    from apache_beam.io.filesystems import FileSystems

    out = options.output
    keep = {r["file"] for r in records}
    FileSystems.rename(
        [FileSystems.join(stage, r["file"]) for r in records],
        [FileSystems.join(out, r["file"]) for r in records],
    )
    stale = [
        p
        for p in _list(out.rstrip("/") + "/*")
        if formats.parse_shard_name(p) and p.rsplit("/", 1)[-1] not in keep
    ]
    if stale:
        log.info("removing %d shards of an earlier run", len(stale))
        FileSystems.delete(stale)


def _input_summaries(options: RunOptions, planned) -> list[dict]:
    from c4clean.pipelines.pipeline import work_dir

    signature = options.per_file_signature()
    found = []
    for input_id, _ in planned:
        _, json_path = perfile.work_paths(work_dir(options), input_id, signature)
        summary = perfile.read_json(json_path) or {"input": input_id, "missing": True}
        found.append(summary)
    return found


def commit(
    options: RunOptions, planned, counters: dict, started: float, echo: Callable[[str], None] = print
) -> RunOutcome:
    from apache_beam.io.filesystems import FileSystems

    from c4clean.pipelines.pipeline import staging_dir, work_dir

    out = options.output
    manifest_path = FileSystems.join(out, MANIFEST)
    if FileSystems.exists(manifest_path):
        FileSystems.delete([manifest_path])  # the old manifest no longer describes the shards
    records = _complete_shards(options, staging_dir(options))
    _move_shards(options, staging_dir(options), records)
    from c4clean.pipelines.near_dedup import commit_audit

    commit_audit(staging_dir(options), out)
    inputs = _input_summaries(options, planned)
    issues = {s["input"]: s["issues"] for s in inputs if s.get("issues")}
    errors = sorted(
        f
        for f, found in issues.items()
        if any(i["code"].startswith(reasons.READ_ERROR_PREFIX) for i in found)
    )
    missing = [s["input"] for s in inputs if s.get("missing")]
    elapsed = round(time.time() - started, 2)

    stats = {
        **formats.TEXT_SHARDS.stamp(),
        "counters": counters,
        "stages": stage_rows(counters),
        "read_issues": issues,
        "files_with_issues": sorted(issues),
        "files_with_errors": errors,
        "wall_seconds": elapsed,
    }
    splits: dict[str, dict] = {}
    for r in records:
        info = splits.setdefault(r["split"], {"pages": 0, "shards": 0, "text_bytes": 0, "words": 0})
        info["pages"] += r["rows"]
        info["shards"] += 1
        info["text_bytes"] += r["text_bytes"]
        info["words"] += r["words"]
    manifest = {
        **formats.TEXT_SHARDS.stamp(),
        "variant": options.variant,
        "format": options.format,
        "options": options.as_manifest(),
        "versions": versions(),
        "created_unix": int(started),
        "wall_seconds": elapsed,
        "inputs": [
            {
                "file": s["input"],
                "size": (s.get("identity") or {}).get("size"),
                "pages": s.get("pages"),
                "issues": len(s.get("issues", [])),
            }
            for s in inputs
        ],
        "splits": splits,
        "shards": [
            {k: r[k] for k in ("file", "split", "shard", "num_shards", "rows", "bytes", "sha256")}
            for r in records
        ],
        "schema": [
            {"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in formats.text_schema()
        ],
    }
    table = summary_table(stats)
    report = (
        "\n\n".join(
            [
                f"# c4clean run: {options.variant}",
                f"{len(inputs)} input files, {sum(i['pages'] for i in splits.values())} pages out, "
                f"{elapsed} s wall time, near-dedup {'on' if options.near_dedup else 'off'}.",
                table,
                splits_table(manifest),
                "Files with read errors: " + (", ".join(errors) if errors else "none") + ".",
                "Files with other read issues (notes, repairs): "
                + (", ".join(sorted(set(issues) - set(errors))) or "none")
                + ".",
            ]
        )
        + "\n"
    )
    _write_json(FileSystems.join(out, STATS), stats)
    atomic.write_bytes_fs(FileSystems.join(out, REPORT), report.encode("utf-8"))
    _write_json(manifest_path, manifest)
    if not options.keep_work and not missing:
        FileSystems.delete([work_dir(options)])
    echo(table)
    echo(splits_table(manifest))
    echo(
        f"{sum(i['pages'] for i in splits.values())} pages in {len(records)} shards written to "
        f"{out} in {elapsed} s"
    )
    if errors:
        echo(f"read errors in {len(errors)} file(s): {', '.join(errors)} (see {STATS})")
    failed = bool(missing) or (options.strict and bool(errors))
    if missing:
        echo(f"no per-file result for: {', '.join(missing)}")
    return RunOutcome(manifest, stats, 1 if failed else 0)


def load_output(directory: str) -> tuple[dict, Optional[dict]]:
    """(manifest, stats) of an existing output folder; stats may be absent."""
    from apache_beam.io.filesystems import FileSystems

    manifest = perfile.read_json(FileSystems.join(directory, MANIFEST))
    if manifest is None:
        raise FileNotFoundError(f"{directory}: no {MANIFEST} (not a finished c4clean output)")
    formats.TEXT_SHARDS.check(manifest, FileSystems.join(directory, MANIFEST))
    return manifest, perfile.read_json(FileSystems.join(directory, STATS))
