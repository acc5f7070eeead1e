"""The C4 bad-words filter (TFDS c4 v3.1.0 `get_badwords_filter_fn`), over the packaged LDNOOBW lists.

Lists, as `c4.py` assembles them:
* `en` comes from LDNOOBW commit 25e679f ("older 'en' file for reproducibility of the original C4");
  every other language from commit 5faf2ba;
* a file's language suffix is stripped (`fr-CA-u-sd-caqc` merges into `fr`), each line is `strip()`ped
  and the words form a set;
* per-language allowlist: common subwords of languages written without spaces.

Matching: the page text, lower-cased, is searched for any word of the list of the page's language
(`page.language.split("-")[0]`). For ja/th/zh a plain alternation; elsewhere a word must be flanked by
a non-word character or the start/end of the text. Words are `re.escape`d (new in 3.1.0).

Soft filtering: with `filter_fraction = n/d` (`float.as_integer_ratio`), a page holding a bad word is
kept iff `md5(normalized_url) % d >= n`; fraction 1.0 drops them all, mC4's 0.999 keeps about 0.1%.
"""

from __future__ import annotations

import os
import re
import threading
from importlib import resources
from pathlib import Path
from typing import Mapping, Optional, Union

from c4clean.cleaning import reasons
from c4clean.cleaning.page import Decision, Page
from c4clean.cleaning.url import page_normalized_url, url_hash

EN_LIST_COMMIT = "25e679f"
OTHER_LISTS_COMMIT = "5faf2ba"
ALLOWLIST: Mapping[str, frozenset] = {
    "ja": frozenset({"sm", "グロ", "女の子"}),
    "zh": frozenset({"性"}),
}
# Written without spaces between words: no word-boundary requirement.
UNSPACED_LANGUAGES = frozenset({"ja", "th", "zh"})


def base_language(tag: str) -> str:
    """`fr-CA-u-sd-caqc` -> `fr`: the key lists and pages are matched on."""
    return tag.split("-")[0]


def _packaged_dir() -> Path:
    return Path(str(resources.files("c4clean.cleaning") / "data" / "badwords"))


def packaged_list_files() -> dict[str, list[Path]]:
    """Base language -> list files of the packaged C4 selection (en: 25e679f, others: 5faf2ba)."""
    root = _packaged_dir()
    files = _list_files(root / OTHER_LISTS_COMMIT)
    files["en"] = [root / EN_LIST_COMMIT / "en"]
    return files


def _list_files(directory: Path) -> dict[str, list[Path]]:
    """Base language -> the files of `directory` named by that language (with or without a suffix)."""
    if not directory.is_dir():
        raise FileNotFoundError(f"bad-words lists directory not found: {directory}")
    files: dict[str, list[Path]] = {}
    for name in sorted(os.listdir(directory)):
        path = directory / name
        if name.startswith(".") or not path.is_file():
            continue
        files.setdefault(base_language(name), []).append(path)
    return files


def load_words(paths, lang: str) -> frozenset:
    """The word set of one language, as `c4.py` builds it: stripped lines, merged, minus the allowlist."""
    words = set()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            words.update(line.strip() for line in f)
    return frozenset(words - ALLOWLIST.get(lang, frozenset()))


def compile_badwords_regex(lang: str, words) -> "re.Pattern[str]":
    """The TFDS pattern. Sorted only so that it is reproducible: alternation order cannot change
    whether `search` finds a match anywhere in the text."""
    alternation = "|".join(re.escape(w) for w in sorted(words))
    if lang in UNSPACED_LANGUAGES:
        return re.compile(alternation)
    return re.compile(r"(?:\W|^)({})(?:\W|$)".format(alternation))


_WORD_RUN = re.compile(r"\w+")


class BadwordsMatcher:
    """Finds a word of one language's list in lower-cased text, with TFDS's regex semantics.

    For spaced languages, a listed word made only of word characters matches, flanked by non-word
    characters or the text's ends, exactly when it equals a maximal run of word characters; so those
    words are looked up in a set of the text's runs (one `\\w+` scan instead of trying a large
    alternation at every non-word position). The few other words (several words, "g-spot", emoji)
    keep the TFDS pattern. A match of an alternation is a match of one of its words, so the union
    finds a bad word exactly when the TFDS pattern does.
    """

    def __init__(self, lang: str, words):
        words = frozenset(words)
        if lang in UNSPACED_LANGUAGES:
            self.tokens: frozenset = frozenset()
            rest = words
        else:
            self.tokens = frozenset(w for w in words if _WORD_RUN.fullmatch(w))
            rest = words - self.tokens
        self.pattern = compile_badwords_regex(lang, rest) if rest else None

    def search(self, lowered: str) -> Optional[str]:
        """A bad word of `lowered` (already lower-cased), or None."""
        if self.tokens:
            found = self.tokens.intersection(_WORD_RUN.findall(lowered))
            if found:
                return min(found)
        if self.pattern is not None:
            match = self.pattern.search(lowered)
            if match is not None:
                return match.group(1) if self.pattern.groups else match.group(0)
        return None


class BadwordsFilter:
    """`__call__(page) -> Decision`: PASSED, SOFT_PASSED or FILTERED (TFDS counter names).

    `lists_dir`: a local directory of list files named by language tag (`en`, `fr-CA-u-sd-caqc`, ...)
    to use instead of the packaged C4 lists; nothing is ever downloaded. Lists are read and compiled
    on the first page of their language, once per filter, thread-safely.
    """

    def __init__(self, filter_fraction: float = 1.0, lists_dir: Optional[Union[str, Path]] = None):
        filter_fraction = float(filter_fraction)
        if not 0.0 <= filter_fraction <= 1.0:
            raise ValueError(f"filter_fraction must be between 0.0 and 1.0, got {filter_fraction}")
        self.filter_fraction = filter_fraction
        self._numerator, self._denominator = float.as_integer_ratio(filter_fraction)
        self.lists_dir = None if lists_dir is None else Path(lists_dir)
        self._files: Optional[dict[str, list[Path]]] = None
        self._matchers: dict[str, Optional[BadwordsMatcher]] = {}
        self._lock = threading.Lock()

    def __getstate__(self):
        # Beam pickles filters into workers: ship the settings, let each worker compile its own.
        return {"filter_fraction": self.filter_fraction, "lists_dir": self.lists_dir}

    def __setstate__(self, state):
        self.__init__(state["filter_fraction"], state["lists_dir"])

    @property
    def languages(self) -> frozenset:
        """Base languages that have a list."""
        return frozenset(self._list_files())

    def _list_files(self) -> dict[str, list[Path]]:
        if self._files is None:
            self._files = packaged_list_files() if self.lists_dir is None else _list_files(self.lists_dir)
        return self._files

    def matcher(self, lang: str) -> Optional[BadwordsMatcher]:
        """The matcher of base language `lang`, or None if it has no list."""
        try:
            return self._matchers[lang]
        except KeyError:
            pass
        with self._lock:
            if lang not in self._matchers:
                paths = self._list_files().get(lang)
                self._matchers[lang] = (
                    None if paths is None else BadwordsMatcher(lang, load_words(paths, lang))
                )
            return self._matchers[lang]

    @staticmethod
    def _language(page: Page) -> str:
        if page.language is None:
            # TFDS would crash here too; language id must run before this filter.
            raise ValueError(
                f"page {page.url!r} has no language; run language id before the bad-words filter"
            )
        return base_language(page.language)

    def language_namespace(self, page: Page) -> Optional[str]:
        """The per-language counter namespace TFDS also counts this page's reason in, if any."""
        lang = self._language(page)
        return reasons.badwords_namespace(lang) if self.matcher(lang) is not None else None

    def find(self, page: Page) -> Optional[str]:
        """A bad word of the page's language found in its text (for `explain`), or None."""
        matcher = self.matcher(self._language(page))
        return None if matcher is None else matcher.search(page.text.lower())

    def keeps_despite_badword(self, page: Page) -> bool:
        return url_hash(page_normalized_url(page)) % self._denominator >= self._numerator

    def __call__(self, page: Page) -> Decision:
        if self.find(page) is None:
            return Decision(True, reasons.PASSED)
        if self.keeps_despite_badword(page):
            return Decision(True, reasons.SOFT_PASSED)
        return Decision(False, reasons.FILTERED)
