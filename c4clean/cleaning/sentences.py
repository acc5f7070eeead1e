"""Sentence splitting with NLTK Punkt and C4's English parameters.

C4 counts sentences with NLTK's pre-trained English Punkt model (`english.pickle`). The same
parameters ship in `data/nltk_data` in NLTK's pickle-free `punkt_tab` format, so nothing is unpickled
and nothing is downloaded. NLTK 3.10 only reads resources found through `nltk.data.path`, hence the
packaged folder is put first on that path before the model is loaded.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Optional

from c4clean.lazy import Lazy, import_submodule

NLTK_DATA_DIR = Path(__file__).resolve().parent / "data" / "nltk_data"
PUNKT_LANGUAGE = "english"


def _load_packaged_punkt():
    PunktTokenizer = import_submodule("nltk.tokenize.punkt").PunktTokenizer
    import nltk.data

    packaged = str(NLTK_DATA_DIR)
    if not (NLTK_DATA_DIR / "tokenizers" / "punkt_tab" / PUNKT_LANGUAGE).is_dir():
        raise FileNotFoundError(f"packaged Punkt parameters missing under {packaged}; reinstall c4clean")
    if not nltk.data.path or nltk.data.path[0] != packaged:
        # First on the path, so that a user's own nltk_data cannot shadow C4's parameters.
        if packaged in nltk.data.path:
            nltk.data.path.remove(packaged)
        nltk.data.path.insert(0, packaged)
    return PunktTokenizer(PUNKT_LANGUAGE)


punkt_tokenizer = Lazy(_load_packaged_punkt)  # the shared Punkt tokenizer, loaded once


def split_sentences(text: str) -> list[str]:
    """Punkt sentences of `text`, as C4's `_get_sentences` returns them."""
    return punkt_tokenizer().tokenize(text)


def count_sentences(text: str, limit: Optional[int] = None) -> int:
    """Number of Punkt sentences in `text` (what C4's sentence thresholds count).

    With `limit`, counting stops there (the result is `min(count, limit)`): Punkt finds sentences
    left to right lazily, so a threshold check need not tokenize the rest of a long page.
    """
    spans = punkt_tokenizer().span_tokenize(text)
    if limit is None:
        return sum(1 for _ in spans)
    return sum(1 for _ in itertools.islice(spans, max(limit, 0)))
