"""Per-file passes: the pages stay in their staged file; only decisions travel.

The global steps of C4 (newest page per URL, near-dedup, line dedup) need only small facts of each
page: a URL and timestamp, MinHash band keys, line keys. So after the per-file stage the pipeline
moves those facts, keyed by where the page lives (`Staged.order`: file position, ordinal), and each
decision (URL winners, near-duplicates removed, lines lost) is sent back to the page's file. A pass
joins a file with the decisions about its pages, reads the staged file again and carries its pages
one step further, page by page inside one DoFn:

    pass 1: winners of URL dedup -> per-page rule verdict -> band keys | line keys | final steps
    pass 2: minus near-duplicates -> line keys | final steps
    pass 3: minus the lines each page lost -> final steps (language id, bad words, split) -> pieces

Whole pages never cross a shuffle: the last pass writes a file's pages of each shard to a sorted
piece (`arrow_sink.write_piece`) and emits only where it is; `transforms.WriteShards` merges each
shard's pieces. Beam still sees every decision as data (so retries, runners and worker counts do
not change the result), but no process holds more than a file's pages, and the work of a step is
one Python loop per file.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from typing import Callable, Optional

import apache_beam as beam

from c4clean.cleaning import reasons
from c4clean.pipelines import perfile, spill, steps
from c4clean.pipelines.counting import CountingDoFn
from c4clean.pipelines.pool import Pooled

log = logging.getLogger(__name__)

BANDS = "bands"  # (key shard, pack of (band key, page id + ref)) of a file's pages, for near-dedup
LINES = "lines"  # (key shard, pack of (line key, url digest + ref)) of a file's lines, for line dedup
FINAL = "final"  # ((split, shard, num shards), ((file position, part), piece path, rows)): `_write_pieces`
# Keys of a shuffle are packed per file and shard (`pack_by_key_shard`): with this many
# shards per input file, each file sends at most one element per shard, and a shard's group holds
# about half as many entries as one file has keys (near-dedup: 8 per page), whatever the corpus size.
# More shards would make more tasks of a few milliseconds, each with its own overhead.
KEY_SHARDS_PER_FILE = 2
# On local workers a pass that does much work splits each file's pages into parts, a task each, of
# halving sizes (`part_of`), and the pool starts the largest first (`largest_first`): the workers
# then end the pass on small tasks, and what one worker waits at the end is at most the last one's
# length. A pass's smallest tasks are about 1 / this of a worker's share of it. The last pass holds
# most of a run's work (equal parts of ~1.1 s on the bench corpus left one worker waiting up to
# ~1 s); near-dedup's signatures a fifth of it; line keys too little to split. The results do not
# depend on it: keys are grouped by key, pieces merged in (file, part) order.
TASKS_PER_WORKER = {BANDS: 16, LINES: 1, FINAL: 64}


@dataclasses.dataclass(frozen=True)
class PassPlan:
    """What one pass does. Before it: which decisions it applies; after: what it emits."""

    emit: str  # BANDS, LINES or FINAL
    rules_namespace: Optional[str] = None  # count the staged verdicts here (first pass only)
    after_near_dedup: bool = False  # drop the near-duplicates
    count_near_dedup: bool = False  # and count near-dedup's output (the first pass after it)
    after_line_dedup: bool = False  # remove the lines each page lost
    min_num_sentences: int = 0
    minhash: tuple = ()  # (num_perm, seed, ngram, normalization, bands, rows) when emit == BANDS
    key_shards: int = 1  # shards of the keys BANDS and LINES send (`pack_by_key_shard`)
    recipe: object = None  # options.Recipe, for the final steps
    language_id: str = "cld3"
    index: int = 0  # the pass's place in the run
    progress_dir: Optional[str] = None  # where a file's pass leaves `done_marker` (progress display)
    pieces_dir: Optional[str] = None  # where the FINAL pass writes its pieces of the shards
    keys_dir: Optional[str] = None  # where BANDS and LINES write their packs (`spill_packs`), if set
    shards_for: Optional[Callable[[str], int]] = None  # split -> its number of shards (FINAL)
    parts: int = 1  # tasks per file (`in_parts`): consecutive ranges of its pages


def pass_plan(options) -> list[str]:
    """What each pass of a run emits, in order (`RunOptions`)."""
    return [BANDS] * options.near_dedup + [LINES] * options.recipe.dedupe_lines + [FINAL]


def pass_parts(options, files: int) -> list[int]:
    """The parts (tasks) per input file of each pass of `pass_plan(options)`, over `files` inputs:
    more than one only on local workers, enough halvings for the smallest parts to be about
    1 / `TASKS_PER_WORKER` of a worker's share of the pass."""
    from c4clean.pipelines.runner import uses_local_pool

    workers = min(options.workers, files)
    if not uses_local_pool(options.runner, workers):
        return [1] * len(pass_plan(options))
    smallest = [-(-TASKS_PER_WORKER[emit] * workers // files) for emit in pass_plan(options)]  # of a file
    return [1 + (n - 1).bit_length() for n in smallest]  # 1/2, 1/4, ... 1/n, 1/n: n rounded up to 2^k


def in_parts(element, parts: int):
    """(file position, decisions) -> ((file position, part), decisions) for each of `parts` parts."""
    file_position, groups = element
    for part in range(parts):
        yield (file_position, part), groups


def largest_first(element) -> tuple[int, int]:
    """The order in which the pool starts a pass's tasks (`in_parts` elements): parts of every file
    before the next, smaller parts (`part_of`)."""
    (file_position, part), _ = element
    return part, file_position


def part_of(ordinals: list, part: int, parts: int) -> list:
    """The `part`-th of `parts` consecutive ranges of `ordinals`: half of them, a quarter, ..., the
    last two of the same size (4 parts: 1/2, 1/4, 1/8, 1/8)."""
    n = len(ordinals)

    def start(k: int) -> int:
        return n if k == parts else n - (n >> k)

    return ordinals[start(part) : start(part + 1)]


DONE_SUFFIX = ".done"


def done_marker(progress_dir: str, index: int, file_position: int, part: int) -> str:
    """Where pass `index` marks a part of a file done: `<index>-<file position>-<part>.done`."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.join(progress_dir, f"{index}-{file_position}-{part}{DONE_SUFFIX}")


def marker_pass(path: str) -> int:
    """The pass index of a `done_marker` path."""
    return int(path.rsplit("/", 1)[-1].split("-", 1)[0])


# What each pass emits, as the progress display names the pass.
PASS_NAMES = {BANDS: "signatures", LINES: "line keys", FINAL: "language id and shards"}


def pack_entries(entries) -> bytes:
    """(key, value) entries, both bytes of fixed widths -> one bytes value: a 4-byte header of the
    two widths, then the entries concatenated (`unpack_entries`)."""
    parts = [key + value for key, value in entries]
    if not parts:
        return b""
    key, value = entries[0]
    return len(key).to_bytes(2, "big") + len(value).to_bytes(2, "big") + b"".join(parts)


def unpack_entries(pack: bytes):
    """The (key, value) entries of a `pack_entries` value, in order."""
    key_width, value_width = int.from_bytes(pack[:2], "big"), int.from_bytes(pack[2:4], "big")
    for start in range(4, len(pack), key_width + value_width):
        middle = start + key_width
        yield pack[start:middle], pack[middle : middle + value_width]


def pack_by_key_shard(entries, shards: int) -> list[tuple[int, bytes]]:
    """(key, value) entries, both bytes of fixed widths and keys being hashes -> (key shard, pack)
    with one pack (`pack_entries`) per shard. All entries of a key fall in one shard, so grouping the
    packs by shard groups the keys, with far fewer elements through a shuffle than one per entry
    (for near-dedup, 16 per page), and one bytes value per pack where a runner holds what it groups
    (Beam's local runner, in the driver)."""
    by_shard: dict[int, list] = {}
    for entry in entries:
        by_shard.setdefault(int.from_bytes(entry[0][-4:], "big") % shards, []).append(entry)
    return [(shard, pack_entries(shard_entries)) for shard, shard_entries in sorted(by_shard.items())]


def spill_packs(
    packs: list[tuple[int, bytes]], directory: Optional[str], name: str
) -> list[tuple[int, object]]:
    """A task's packs (`pack_by_key_shard`) written to the work file `name` in `directory`
    (`spill.write`) -> (key shard, (path, offset, length)) of each: what crosses the shuffle is then
    a small reference per pack. Without a directory, the packs themselves."""
    refs = spill.write([pack for _, pack in packs], directory, name)
    return [(shard, ref) for (shard, _), ref in zip(packs, refs)]


def read_packs(packs) -> list[bytes]:
    """The packs of a key shard's group: each one itself, or read back where `spill_packs` put it."""
    return spill.read(packs)


def unpack_groups(shard) -> dict:
    """key -> [values] of a key shard's packs (a GroupByKey's output)."""
    _, packs = shard
    groups: dict = {}
    for pack in read_packs(packs):
        for key, value in unpack_entries(pack):
            groups.setdefault(key, []).append(value)
    return groups


def pack_ordinals(ordinals) -> bytes:
    """Pages of one file (their ordinals) as one bytes value: a decision on its way back to the file."""
    import numpy as np

    return np.asarray(sorted(ordinals), dtype=">u4").tobytes()


def unpack_ordinals(packs) -> set[int]:
    """The ordinals of `pack_ordinals` values."""
    import numpy as np

    return set(np.frombuffer(b"".join(packs), dtype=">u4").tolist())


def with_ref(prefix: bytes, file_position: int, ordinal: int) -> bytes:
    """`prefix` (which decides the order) + where the page is: one small bytes value per page in
    the shuffles, instead of a tuple of three objects."""
    return prefix + file_position.to_bytes(4, "big") + ordinal.to_bytes(4, "big")


def page_ref(packed: bytes) -> tuple[int, int]:
    """(file position, ordinal) of a `with_ref` value."""
    return int.from_bytes(packed[-8:-4], "big"), int.from_bytes(packed[-4:], "big")


class FilePass(CountingDoFn):
    """((file position, part), {"path": [staged file], "winner": [`pack_ordinals`], "removed":
    [ordinal], "lost": [`pack_entries` of (ordinal, line key)]}) -> the pass's outputs on that part
    of the file's pages (`PassPlan.emit`; BANDS and LINES as tagged outputs, FINAL as the main output)."""

    def __init__(self, plan: PassPlan):
        self._plan = plan
        self._hasher = None
        self._final: list[steps.Step] = []

    def setup(self):
        plan = self._plan
        if plan.emit == BANDS:
            from c4clean.cleaning.minhash import MinHasher

            self._hasher = MinHasher(*plan.minhash[:4])
        elif plan.emit == FINAL:
            self._final = steps.final_steps(plan.recipe, plan.language_id)

    def process(self, element):
        (file_position, part), groups = element
        plan = self._plan
        paths = list(groups["path"])
        if not paths:
            return
        winners = part_of(sorted(unpack_ordinals(groups["winner"])), part, plan.parts)
        if winners:
            yield from self._pass(paths[0], file_position, part, winners, groups)
        if plan.progress_dir is not None:  # also for a part with no pages left: the display counts parts
            from c4clean import atomic

            atomic.write_bytes_fs(done_marker(plan.progress_dir, plan.index, file_position, part), b"")

    def _pass(self, path: str, file_position: int, part: int, winners: list, groups):
        plan = self._plan
        started = time.perf_counter()
        pages = self._current_pages(path, file_position, winners, groups)
        if plan.emit == BANDS:
            yield from self._band_entries((file_position, part), pages)
        elif plan.emit == LINES:
            yield from self._line_entries((file_position, part), pages)
        else:
            out = steps.run_steps(self._final, [page for _, page in pages], self.count)
            yield from self._write_pieces((file_position, part), out)
        seconds = time.perf_counter() - started
        of = f" part {part + 1}/{plan.parts}" if plan.parts > 1 else ""
        name = PASS_NAMES[plan.emit]
        log.info("file %d%s: %s of %d pages in %.1f s", file_position, of, name, len(pages), seconds)

    def _current_pages(self, path: str, file_position: int, winners: list, groups) -> list:
        """(ordinal, page) of the file's pages still in, with the decisions of this pass applied."""
        plan = self._plan
        removed = set(groups["removed"]) if plan.after_near_dedup else set()
        verdict = steps.ApplyStagedVerdict(plan.rules_namespace) if plan.rules_namespace else None
        pages = []
        for staged in perfile.decode(perfile.read_bytes(path), file_position, rows=winners):
            ordinal = staged.order[1]
            if verdict is not None:
                kept = steps.run_step(verdict, staged, self.count)
                if not kept:
                    continue
            elif staged.drop is not None:
                continue
            if ordinal not in removed:
                pages.append((ordinal, staged.page))
        if plan.count_near_dedup:
            for _, page in pages:
                steps.count_stage(self.count, steps.NEAR_DEDUP, 0, 1, steps.text_bytes(page))
            self.count(reasons.NS_NEAR_DEDUP, reasons.PASSED, len(pages))
        if plan.after_line_dedup:
            lost = collections.defaultdict(set)
            for pack in groups["lost"]:
                for ordinal, key in unpack_entries(pack):
                    lost[int.from_bytes(ordinal, "big")].add(key)
            remove = steps.RemoveLines(plan.min_num_sentences)
            pages = [
                (ordinal, kept)
                for ordinal, page in pages
                for kept in steps.run_step(remove, (page, lost.get(ordinal, ())), self.count)
            ]
        return pages

    def _write_pieces(self, task: tuple[int, int], split_pages: list):
        """The output pages of a file's part (`task`: (file position, part)), one sorted piece per
        shard they fall in -> a small record per piece (`FINAL`), so that no page goes through a
        shuffle."""
        from apache_beam.io.filesystems import FileSystems

        from c4clean.pipelines.arrow_sink import piece_name, shard_of, write_piece

        by_shard: dict[tuple, list] = {}
        for split, page in split_pages:
            n = self._plan.shards_for(split)
            by_shard.setdefault((split, shard_of(page.url, n), n), []).append(page)
        for shard, shard_pages in sorted(by_shard.items()):
            path = FileSystems.join(self._plan.pieces_dir, piece_name(*shard, *task))
            yield shard, (task, path, write_piece(path, shard_pages))

    def _band_entries(self, task: tuple[int, int], pages: list):
        from c4clean.cleaning.minhash import band_keys, page_id

        bands, rows = self._plan.minhash[4:]
        entries = []
        for ordinal, page in pages:
            start = time.thread_time()
            signature = self._hasher.signature(page.text)
            keys = band_keys(signature, bands, rows) if signature is not None else ()
            us = int((time.thread_time() - start) * 1e6)
            steps.count_stage(self.count, steps.NEAR_DEDUP, 1, 0, us=us)
            pid = with_ref(page_id(page.url, page.text), task[0], ordinal)
            entries += [(key, pid) for key in keys]
        for pack in self._packs(task, entries):
            yield beam.pvalue.TaggedOutput(BANDS, pack)

    def _line_entries(self, task: tuple[int, int], pages: list):
        from c4clean.cleaning.dedup_lines import emit_line_keys
        from c4clean.cleaning.url import url_digest

        entries = []
        for ordinal, page in pages:
            member = with_ref(url_digest(page.url), task[0], ordinal)
            entries += [(key, member) for key, _ in emit_line_keys(page)]
        for pack in self._packs(task, entries):
            yield beam.pvalue.TaggedOutput(LINES, pack)

    def _packs(self, task: tuple[int, int], entries: list) -> list:
        """`task`: (file position, part)."""
        plan = self._plan
        packs = pack_by_key_shard(entries, plan.key_shards)
        return spill_packs(packs, plan.keys_dir, "{}-{}-{}.keys".format(plan.index, *task))


class _LostLines(beam.DoFn):
    """A key shard of line entries -> (file position, `pack_entries` of (ordinal, line key)) for
    each file with a page that has a line it does not own."""

    def process(self, shard):
        from c4clean.cleaning.dedup_lines import line_losers

        lost: dict[int, list] = {}
        for key, members in unpack_groups(shard).items():
            for member in line_losers(members):
                file_position, ordinal = page_ref(member)
                lost.setdefault(file_position, []).append((ordinal.to_bytes(4, "big"), key))
        for file_position, entries in sorted(lost.items()):
            yield file_position, pack_entries(entries)


class LostLines(beam.PTransform):
    """PCollection[(key shard, pack of (line key, member))] -> what each file's pages lose: the lines
    some other page owns (TFDS `remove_duplicate_text`'s owner: smallest md5(url)), packed per file
    and key shard. Only the lines a page loses travel back to it; most lines are in one page only."""

    def expand(self, line_entries):
        return (
            line_entries
            | "GroupLineShards" >> beam.GroupByKey()
            | "LostLines" >> beam.ParDo(Pooled(_LostLines()))
        )


class _TextsOfFile(beam.DoFn):
    """(file position, {"path", "want": [(ordinal, request)]}) -> (request, the page's
    `candidate_texts` record) for each wanted page; with `keys_dir`, the file's records are spilled
    to one `texts-<file position>.bin` there and each page's is a (path, offset, length) reference."""

    def __init__(self, keys_dir: Optional[str] = None):
        self._keys_dir = keys_dir

    def process(self, element):
        from c4clean.pipelines import candidate_texts

        file_position, groups = element
        paths = list(groups["path"])
        wanted = dict(groups["want"])
        if not paths or not wanted:
            return
        requests, records = [], []
        for staged in perfile.decode(perfile.read_bytes(paths[0]), file_position, rows=sorted(wanted)):
            requests.append(wanted[staged.order[1]])
            records.append(candidate_texts.encode(staged.page.url, staged.page.text))
        yield from zip(requests, spill.write(records, self._keys_dir, f"texts-{file_position}.bin"))


def _by_file(pid: bytes):
    file_position, ordinal = page_ref(pid)
    return file_position, (ordinal, pid)


class TextsOfPages(beam.PTransform):
    """PCollection[request] (ending with a page id) -> (request, the page's `candidate_texts`
    record or, with `keys_dir`, a reference to it spilled there): near-dedup's candidates, read
    from their files (`NearDuplicates.texts`)."""

    def __init__(self, files, keys_dir: Optional[str] = None):
        super().__init__()
        self._files = files
        self._keys_dir = keys_dir

    def expand(self, page_ids):
        wanted = page_ids | "ByFile" >> beam.Map(_by_file)
        return (
            {"path": self._files, "want": wanted}
            | "JoinFiles" >> beam.CoGroupByKey()
            | "ReadTexts" >> beam.ParDo(Pooled(_TextsOfFile(self._keys_dir)))
        )
