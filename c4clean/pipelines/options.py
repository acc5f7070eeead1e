"""What a `c4clean run` does: the variants' recipe flags (one table) and the run's options.

The flags are TFDS c4 v3.1.0's `C4Config` fields (clean, dedupe, badwords_filter_fraction,
realnewslike, webtextlike, paragraph_filter, languages). `en.noblocklist` is allenai's `en` with the
bad-words filter off; `multilingual` is mC4's recipe (cld3 language id, or langdetect with `--langid`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Optional

# Text shard formats (`--format`), each also its files' suffix; `arrow_sink` writes and reads them.
from c4clean.formats import DEFAULT_SHARD_FORMAT as DEFAULT_FORMAT
from c4clean.formats import SHARD_FORMATS as FORMATS

# Language id of the multilingual variant: mC4's cld3 (`cleaning.cld3`), or langdetect with the same
# 0.95 threshold. The English variants always use langdetect, as TFDS's `detect_english` does.
LANGID_BACKENDS = ("cld3", "langdetect")
# Shards per split at most (the error says why; more would only make tiny files and a huge manifest).
MAX_SHARDS = 100_000
WHY_MAX_SHARDS = "every shard is written even when empty; 100,000 already gives C4's 365M pages 3,650 each"
DEFAULT_CC_BASE_URL = "https://data.commoncrawl.org/"

# Where MinHash near-dedup sits: after clean_page (boilerplate lines are gone, so site templates do not
# make pages look alike) and before global line dedup (which strips the lines near-duplicates share
# from all copies but one, leaving fragments that no longer look alike: measured on the bench corpus,
# 1,632 verified pairs before line dedup against 167 after). Before language id too, so the costly
# langdetect skips near-duplicates. TFDS has no near-dedup; --no-near-dedup removes it.
NEAR_DEDUP_POSITION = "after clean-page, before dedupe-lines"


@dataclasses.dataclass(frozen=True)
class Recipe:
    clean: bool  # clean_page (C4 line and page rules)
    dedupe_lines: bool  # global + in-page line dedup
    badwords_fraction: float  # 1.0 drops every page with a bad word, 0.0 turns the filter off
    realnews: bool = False  # RealNews domain list before URL dedup
    webtextlike: bool = False  # inner join on a user URL list (--webtext-urls)
    paragraph_filter: bool = False  # mC4: >= 3 lines of >= 200 characters
    english_only: bool = True  # langdetect English (>= 0.99) vs per-language splits

    @property
    def min_num_sentences(self) -> int:
        # TFDS: after dedup, >= 3 sentences only when the page was cleaned.
        return 3 if self.clean else 0


VARIANTS: dict[str, Recipe] = {
    "en": Recipe(clean=True, dedupe_lines=True, badwords_fraction=1.0),
    "en.noclean": Recipe(clean=False, dedupe_lines=False, badwords_fraction=0.0),
    "en.noblocklist": Recipe(clean=True, dedupe_lines=True, badwords_fraction=0.0),
    "realnewslike": Recipe(clean=True, dedupe_lines=True, badwords_fraction=1.0, realnews=True),
    "webtextlike": Recipe(clean=True, dedupe_lines=True, badwords_fraction=1.0, webtextlike=True),
    "multilingual": Recipe(
        clean=False, dedupe_lines=True, badwords_fraction=0.999, paragraph_filter=True, english_only=False
    ),
}


@dataclasses.dataclass(frozen=True)
class RunOptions:
    output: str
    inputs: tuple[str, ...] = ()
    variant: str = "en"
    cc_dump: Optional[str] = None
    cc_base_url: str = DEFAULT_CC_BASE_URL
    max_files: Optional[int] = None
    cache_dir: Optional[str] = None
    near_dedup: bool = True
    near_dedup_threshold: float = 0.8
    near_dedup_normalize: str = "nfkc"  # minhash.NORMALIZE_MODES; "none": raw lower-cased words
    num_perm: int = 128
    ngram: int = 5
    num_shards: int = 8
    num_validation_shards: int = 1
    domains: Optional[str] = None  # custom domain list: replaces/enables the domain filter
    webtext_urls: tuple[str, ...] = ()
    resume: bool = False
    strict: bool = False
    keep_work: bool = False
    format: str = DEFAULT_FORMAT
    langid: Optional[str] = None  # LANGID_BACKENDS; None: cld3 for multilingual, else langdetect
    workers: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    runner: str = "direct"
    beam_args: tuple[str, ...] = ()

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; one of {', '.join(VARIANTS)}")
        if not self.inputs and not self.cc_dump:
            raise ValueError("give --input or --cc-dump")
        if self.recipe.webtextlike and not self.webtext_urls:
            raise ValueError("--variant webtextlike needs --webtext-urls FILE")
        if self.format not in FORMATS:
            raise ValueError(f"unknown --format {self.format!r}; one of {', '.join(FORMATS)}")
        if self.langid is not None and self.langid not in LANGID_BACKENDS:
            raise ValueError(f"unknown --langid {self.langid!r}; one of {', '.join(LANGID_BACKENDS)}")
        if self.recipe.english_only and self.langid == "cld3":
            raise ValueError("--langid cld3 is for --variant multilingual (C4's English uses langdetect)")
        for flag, count in (
            ("--num-shards", self.num_shards),
            ("--num-validation-shards", self.num_validation_shards),
        ):
            if not 1 <= count <= MAX_SHARDS:
                raise ValueError(f"{flag} must be in 1..{MAX_SHARDS:,} (got {count:,}): {WHY_MAX_SHARDS}")
        if self.workers < 1:
            raise ValueError("--workers must be >= 1")
        from c4clean.cleaning.minhash import check_settings

        check_settings(self.near_dedup_threshold, self.num_perm, self.ngram, self.near_dedup_normalize)

    @property
    def layout(self):
        """The output folder's paths (`layout.RunLayout`)."""
        from c4clean.pipelines.layout import RunLayout

        return RunLayout.of(self.output)

    @property
    def recipe(self) -> Recipe:
        return VARIANTS[self.variant]

    @property
    def language_id(self) -> str:
        if self.langid:
            return self.langid
        return "langdetect" if self.recipe.english_only else "cld3"

    @property
    def domain_filter(self) -> Optional[str]:
        """ "realnews" (packaged list), a user file, or None."""
        if self.domains:
            return self.domains
        return "realnews" if self.recipe.realnews else None

    def shards_for(self, split: str) -> int:
        return self.num_validation_shards if split.endswith("validation") else self.num_shards

    def per_file_signature(self) -> str:
        """Everything the per-input-file stage depends on; part of its resume key."""
        domains = self.domain_filter
        if domains and domains != "realnews":
            with open(domains, "rb") as f:
                domains = "sha256:" + hashlib.sha256(f.read()).hexdigest()
        recipe = self.recipe
        parts = {"clean": recipe.clean, "paragraph_filter": recipe.paragraph_filter, "domains": domains}
        return json.dumps(parts, sort_keys=True)

    def as_manifest(self) -> dict:
        """The options as recorded in manifest.json (paths kept, nothing machine-specific dropped)."""
        out = dataclasses.asdict(self)
        out["recipe"] = dataclasses.asdict(self.recipe)
        out["recipe"]["min_num_sentences"] = self.recipe.min_num_sentences
        out["langid"] = self.language_id
        out["near_dedup_position"] = NEAR_DEDUP_POSITION if self.near_dedup else None
        for key in ("inputs", "webtext_urls", "beam_args"):
            out[key] = list(out[key])
        return out
