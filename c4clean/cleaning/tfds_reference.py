"""The TFDS c4 v3.1.0 reference code (`tensorflow_datasets.text.c4_utils`), usable without TensorFlow.

The oracle of the differential tests (the reference next to c4clean, page by page) and of
`benchmarks/bench_cleaning_core.py` (the reference's speed next to c4clean's). Needs
`tensorflow-datasets` (the `test` extra); nothing in c4clean's own code path imports it.

* `c4_utils.tf` is replaced by a stand-in that has exactly what the module uses
  (`tf.compat.as_text`, `tf.io.gfile.GFile`).
* Its sentence tokenizer is NLTK Punkt built from the packaged C4 parameters (the pickle-free
  `punkt_tab` form of `english.pickle`), so it never calls `nltk.download` and never unpickles.
  The tokenizer is built here from the data files, not through `c4clean.cleaning.sentences`, so the
  reference shares no code with the implementation under test.
* `counters()` records the reference's Beam counters as `{(namespace, name): amount}`.
* `offline_tldextract()` gives an extractor that uses tldextract's bundled suffix-list snapshot;
  monkeypatch `tldextract.extract` with its `__call__` before calling `is_realnews_domain`, which
  would otherwise try to fetch the public suffix list.

API: `load_c4_utils()`, `tfds_page(c4_utils, page)`, `as_page(features)`, `read_tfds_pages(path)`,
`counters(c4_utils)`, `offline_tldextract()`, `differential_corpus(shared_data)`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gzip
import shutil
import tempfile
import types
from pathlib import Path

from c4clean.lazy import Lazy

PACKAGED_NLTK_DATA = Path(__file__).resolve().parent / "data" / "nltk_data"


def _as_text(value, encoding="utf-8"):
    return value.decode(encoding) if isinstance(value, (bytes, bytearray)) else value


_tf_stand_in = types.SimpleNamespace(
    compat=types.SimpleNamespace(as_text=_as_text),
    io=types.SimpleNamespace(gfile=types.SimpleNamespace(GFile=open)),
)


def _packaged_punkt():
    import nltk.data
    from nltk.tokenize.punkt import PunktTokenizer

    packaged = str(PACKAGED_NLTK_DATA)
    if packaged not in nltk.data.path:
        nltk.data.path.insert(0, packaged)
    return PunktTokenizer("english")


def _patched_c4_utils():
    import tensorflow_datasets.text.c4_utils as c4_utils

    c4_utils.tf = _tf_stand_in
    tokenizer = _packaged_punkt()
    c4_utils._load_sentence_tokenizer = lambda: tokenizer
    c4_utils._SENTENCE_TOKENIZER = tokenizer
    return c4_utils


# The reference module, patched once to run without TensorFlow and offline.
load_c4_utils = Lazy(_patched_c4_utils)


def tfds_page(c4_utils, page):
    """A c4clean `Page` as the reference's `PageFeatures` (same field names)."""
    return c4_utils.PageFeatures(
        url=page.url,
        normalized_url=page.normalized_url,
        text=page.text,
        timestamp=page.timestamp,
        content_length=page.content_length,
        content_type=page.content_type,
        language=page.language,
    )


def as_page(features):
    """The reference's `PageFeatures` as a c4clean `Page`."""
    from c4clean.cleaning.page import Page

    return Page(**dataclasses.asdict(features))


def read_tfds_pages(path, counter_inc_fn=None) -> list:
    """All pages the reference's `split_wet_file` yields for a `.wet` or `.wet.gz` file.

    The reference only reads gzip, so a plain `.wet` is first compressed into a temporary file.
    """
    c4_utils = load_c4_utils()
    path = Path(path)
    count = counter_inc_fn or (lambda name, amount=1: None)
    with open(path, "rb") as f:
        is_gzip = f.read(2) == b"\x1f\x8b"
    if is_gzip:
        return list(c4_utils.split_wet_file(str(path), counter_inc_fn=count))
    with tempfile.TemporaryDirectory() as tmp:
        gz_path = Path(tmp) / (path.name + ".gz")
        with open(path, "rb") as src, gzip.open(gz_path, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return list(c4_utils.split_wet_file(str(gz_path), counter_inc_fn=count))


@contextlib.contextmanager
def counters(c4_utils):
    """Within the block, the reference's `get_counter_inc_fn` counters land in the yielded Counter."""
    recorded = collections.Counter()
    original = c4_utils.get_counter_inc_fn

    def get_counter_inc_fn(namespace):
        def inc(counter, amt=1):
            recorded[(namespace, counter)] += amt

        return inc

    c4_utils.get_counter_inc_fn = get_counter_inc_fn
    try:
        yield recorded
    finally:
        c4_utils.get_counter_inc_fn = original


def offline_tldextract():
    """A tldextract extractor that never touches the network (bundled suffix-list snapshot)."""
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


_corpus_cache: dict = {}


def differential_corpus(shared_data) -> list:
    """The reference's pages of `wet/small` (both files) and the TFDS fake files `wet/synthetic/tfds_c4`,
    in a fixed order; read once per process."""
    shared_data = Path(shared_data)
    key = str(shared_data)
    if key not in _corpus_cache:
        files = sorted((shared_data / "wet" / "small").glob("*.warc.wet.gz"))
        files += sorted((shared_data / "wet" / "synthetic" / "tfds_c4").glob("*.warc.wet"))
        if not files:
            raise FileNotFoundError(f"no WET files under {shared_data}/wet/small or wet/synthetic/tfds_c4")
        _corpus_cache[key] = [p for f in files for p in read_tfds_pages(f)]
    return list(_corpus_cache[key])
