"""The per-input-file stage: read, length filter, domain filter, URL normalization and the per-page
rules (clean_page or mC4's paragraph filter), saved per file so that `--resume` skips finished files.

C4's order applies clean_page after URL dedup. Doing it here, per file, gives the same result: the
rule depends on the page alone, and what URL dedup needs (the timestamp) is kept even for pages the
rule drops. The verdict travels with the page (`Staged`); counters are incremented only when a page
reaches the stage in C4's order, so `stats.json` counts what TFDS counts.

A file's result is `<work>/files/<key>.arrow` (staged pages) plus `<key>.json` (its `FileSummary`:
counters, read issues, size), both written atomically, the JSON last: its presence means the file is
done. The key
hashes the input's name and the recipe flags this stage depends on; the JSON records the file's size
and mtime, and a changed file is redone.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import time
from typing import NamedTuple, Optional

import pyarrow as pa

from c4clean import atomic, formats, storage
from c4clean.cleaning import reasons
from c4clean.cleaning.page import Page

log = logging.getLogger(__name__)

# File-level reader problems go to stats.json by name; these three are per-record validity
# counters (TFDS `_validate_features`), expected in every file (the warcinfo record has no URL).
RECORD_VALIDITY_CODES = frozenset({reasons.NO_URL, reasons.NO_CONTENT, reasons.NO_TIMESTAMP})


class Staged(NamedTuple):
    """A page after the per-file stage.

    `page`: the page to continue with (cleaned text when `drop` is None); when the per-page rule
    dropped it, its text is emptied but url and timestamp stay, since URL dedup still needs them.
    `drop`: (namespace, reason) of the per-page rule that drops the page, or None.
    `counts`: that rule's counters for this page. `order`: (position of its file among the sorted
    inputs, position in the file), set when loaded: it makes select_newest_page's "first seen" among
    same-URL, same-timestamp copies independent of bundling, and equal to TFDS on one worker.
    """

    page: Page
    drop: Optional[tuple[str, str]]
    counts: dict
    order: tuple = ()


@dataclasses.dataclass
class FileSummary:
    """What the per-file stage found in one input file (saved as its `<key>.json`)."""

    input: str
    local_path: Optional[str]
    pages: int  # staged pages (after the length and domain filters)
    counters: dict[str, dict[str, int]]  # {namespace: {reason: count}} of read, length, domain
    issues: list[dict]  # read issues worth naming: {file, code, record_index, detail}
    cpu_us: dict[str, int] = dataclasses.field(default_factory=dict)  # "read", "rules"
    identity: Optional[dict] = None  # size and mtime of the input; None: redo on --resume

    def total(self, namespace: str, *names: str) -> int:
        """The sum of `names` in `namespace`, or of every name when none is given."""
        found = self.counters.get(namespace, {})
        return sum(found.values()) if not names else sum(found.get(n, 0) for n in names)

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_dict(cls, data: dict) -> "FileSummary":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def read_summary(json_path: str) -> Optional[FileSummary]:
    """The saved summary of a finished file, or None (not finished, or written by another format)."""
    data = read_json(json_path)
    try:
        return FileSummary.from_dict(data) if data is not None else None
    except TypeError:
        return None


@dataclasses.dataclass(frozen=True)
class PerFileSettings:
    files_dir: str  # `RunLayout.files_dir`
    signature: str
    clean: bool
    paragraph_filter: bool
    domain_filter: Optional[str]  # "realnews", a file path, or None
    resume: bool


def work_key(input_id: str, signature: str) -> str:
    # The work format is part of the key: results of another format version are never found, so
    # they are redone rather than misread.
    return hashlib.sha256(json.dumps([formats.WORK.id, input_id, signature]).encode()).hexdigest()[:40]


def work_paths(files_dir: str, input_id: str, signature: str) -> tuple[str, str]:
    base = storage.join(files_dir, work_key(input_id, signature))
    return base + ".arrow", base + ".json"


def read_json(path: str) -> Optional[dict]:
    try:
        with storage.open_read(path) as f:
            return json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError, IOError):
        return None


_STAGED_SCHEMA = formats.work_schema()


def encode(staged: list[Staged]) -> bytes:
    rows = collections.defaultdict(list)
    for s in staged:
        for field in (
            "url",
            "text",
            "timestamp",
            "content_type",
            "content_length",
            "normalized_url",
            "language",
        ):
            rows[field].append(getattr(s.page, field))
        rows["drop_namespace"].append(s.drop[0] if s.drop else None)
        rows["drop_reason"].append(s.drop[1] if s.drop else None)
        rows["counts"].append(json.dumps(s.counts, sort_keys=True))
    table = pa.Table.from_pydict({f.name: rows[f.name] for f in _STAGED_SCHEMA}, schema=_STAGED_SCHEMA)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, _STAGED_SCHEMA) as writer:
        writer.write_table(table, max_chunksize=4096)
    return sink.getvalue().to_pybytes()


def decode(data: bytes, file_position: int = 0, rows=None):
    """Staged pages from a saved file, in their saved (reading) order; `rows`: only these ordinals
    (sorted), as the per-file passes read the pages a step asked for."""
    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    ordinals = range(table.num_rows) if rows is None else rows
    if rows is not None:
        table = table.take(pa.array(rows, type=pa.int64()))
    for ordinal, row in zip(ordinals, table.to_pylist()):
        drop = (row["drop_namespace"], row["drop_reason"]) if row["drop_reason"] else None
        page = Page(
            url=row["url"],
            text=row["text"],
            timestamp=row["timestamp"],
            content_type=row["content_type"],
            content_length=row["content_length"],
            normalized_url=row["normalized_url"],
            language=row["language"],
        )
        yield Staged(page, drop, json.loads(row["counts"]), (file_position, ordinal))


class UrlEntry(NamedTuple):
    """What URL dedup needs of a staged page: its timestamp and `Staged.order`."""

    timestamp: str
    order: tuple


def url_entries(data: bytes, file_position: int) -> list[tuple[str, UrlEntry]]:
    """(normalized url, UrlEntry) of every staged page of a saved file, without reading its text."""
    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    urls = table.column("normalized_url").to_pylist()
    timestamps = table.column("timestamp").to_pylist()
    return [(u, UrlEntry(ts, (file_position, i))) for i, (u, ts) in enumerate(zip(urls, timestamps))]


class PageRules:
    """The per-page steps of this stage (`cleaning.recipe`: those run at read time, then the one whose
    verdict is staged), built once per worker."""

    def __init__(self, settings: PerFileSettings):
        from c4clean.cleaning import recipe, url

        self.settings = settings
        self.prepare = recipe.prepare
        domain_filter = None
        if settings.domain_filter == "realnews":
            domain_filter = url.DomainFilter.realnews()
        elif settings.domain_filter:
            domain_filter = url.DomainFilter.from_file(settings.domain_filter)
        # settings carry the recipe flags of these steps (clean, paragraph_filter)
        steps = recipe.page_steps(settings, domain_filter, where=(recipe.FILE, recipe.STAGED))
        self.filters = [s for s in steps if s.where == recipe.FILE]
        self.staged_step = next((s for s in steps if s.where == recipe.STAGED), None)

    def stage(self, page: Page) -> Staged:
        step = self.staged_step
        if step is None:
            return Staged(page, None, {})
        verdict = step.apply(page)
        if verdict.keep:
            return Staged(verdict.page, None, dict(verdict.counts))
        return Staged(page.replace(text=""), (step.namespace, verdict.reason), dict(verdict.counts))


def process_file(input_id: str, local_path: str, rules: PageRules) -> tuple[list[Staged], FileSummary]:
    """Reads and stages one input file; returns its staged pages and its summary (for the JSON)."""
    from c4clean.cleaning.wet import ReadIssue, iter_records
    from c4clean.pipelines import histograms

    counters: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    issues: list[dict] = []
    staged: list[Staged] = []
    start = time.thread_time()
    rule_seconds = 0.0

    def count(namespace: str, name: str) -> None:
        counters[namespace][name] += 1

    try:
        with storage.open_read(local_path) as f:
            for item in iter_records(f, name=input_id):
                if isinstance(item, ReadIssue):
                    count(reasons.NS_READ, item.code)
                    if item.code not in RECORD_VALIDITY_CODES:
                        issues.append(
                            {
                                "file": input_id,
                                "code": item.code,
                                "record_index": item.record_index,
                                "detail": item.detail,
                            }
                        )
                        log.warning(
                            "%s: record %s: %s (%s)", input_id, item.record_index, item.code, item.detail
                        )
                    continue
                count(reasons.NS_READ, reasons.PASSED)
                page = rules.prepare(item)
                for name in histograms.counter_names(page.text, "before"):
                    count(reasons.NS_HISTOGRAMS, name)
                for step in rules.filters:  # length, domains
                    verdict = step.apply(page)
                    for name in verdict.counts:
                        count(step.namespace, name)
                    if not verdict.keep:
                        break
                else:
                    rule_start = time.thread_time()
                    staged.append(rules.stage(page))
                    rule_seconds += time.thread_time() - rule_start
    except Exception as error:  # noqa: BLE001 - any failure of one file must not end the run
        # The reader reports damage as values; this catches what it could not (e.g. a vanished
        # file). Pages read before the failure are kept, as for a truncated file.
        count(reasons.NS_READ, reasons.READ_FAILED)
        issues.append(
            {
                "file": input_id,
                "code": reasons.READ_FAILED,
                "record_index": None,
                "detail": f"{type(error).__name__}: {error}",
            }
        )
        log.error("%s: reading failed: %s: %s", input_id, type(error).__name__, error)
    # CPU time (this thread) of reading, length/domain filters vs the per-page rule, for the summary.
    cpu_us = {
        "read": int((time.thread_time() - start - rule_seconds) * 1e6),
        "rules": int(rule_seconds * 1e6),
    }
    summary = FileSummary(
        input=input_id,
        local_path=local_path,
        pages=len(staged),
        counters={ns: dict(sorted(names.items())) for ns, names in sorted(counters.items())},
        issues=issues,
        cpu_us=cpu_us,
    )
    return staged, summary


def staging_elements(planned) -> list[tuple[int, str, str]]:
    """(file position, input id, location) of each planned input, the position being its place among
    the sorted inputs (`Staged.order`)."""
    return [(i, input_id, location) for i, (input_id, location) in enumerate(sorted(planned))]


def run_file(input_id: str, local_path: str, rules: PageRules) -> str:
    """Stages one file unless `--resume` finds it done; returns the path of its staged pages."""
    settings = rules.settings
    arrow_path, json_path = work_paths(settings.files_dir, input_id, settings.signature)
    identity = storage.identity(local_path)  # a changed input is staged again
    if settings.resume:
        saved = read_summary(json_path)
        if saved is not None and saved.identity == identity:
            log.info("resume: %s already staged (%d pages), skipped", input_id, saved.pages)
            return arrow_path
    staged, summary = process_file(input_id, local_path, rules)
    summary.identity = identity
    atomic.write_bytes_fs(arrow_path, encode(staged))
    atomic.write_bytes_fs(json_path, summary.to_json())
    log.info("staged %s: %d pages, %d read issues", input_id, len(staged), len(summary.issues))
    return arrow_path


def record_failure(input_id: str, settings: PerFileSettings, code: str, detail: str) -> str:
    """Saves an input that could not even be fetched as a file with no pages and one issue.

    Its identity is None, so `--resume` tries it again.
    """
    arrow_path, json_path = work_paths(settings.files_dir, input_id, settings.signature)
    issue = {"file": input_id, "code": code, "record_index": None, "detail": detail}
    log.error("%s: %s (%s)", input_id, code, detail)
    summary = FileSummary(
        input=input_id, local_path=None, pages=0, counters={reasons.NS_READ: {code: 1}}, issues=[issue]
    )
    atomic.write_bytes_fs(arrow_path, encode([]))
    atomic.write_bytes_fs(json_path, summary.to_json())
    return arrow_path


def read_bytes(arrow_path: str) -> bytes:
    with storage.open_read(arrow_path) as f:
        return f.read()


def load_summary(arrow_path: str) -> FileSummary:
    """The summary of a finished file (the JSON beside its staged pages)."""
    json_path = arrow_path[: -len(".arrow")] + ".json"
    summary = read_summary(json_path)
    if summary is None:
        raise FileNotFoundError(f"{json_path}: the per-file result is missing or unreadable")
    return summary
