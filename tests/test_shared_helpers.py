"""The small shared helpers: markdown tables, the lazy singleton, splitmix64."""

import pickle
import threading
import time

import numpy as np

from c4clean import hashing, markdown
from c4clean.lazy import Lazy


def test_markdown_table_plain_and_aligned():
    rows = [["train", 12, None], ["validation", 3, "x"]]
    assert markdown.table(["split", "pages", "note"], rows) == (
        "| split | pages | note |\n|---|---|---|\n| train | 12 |  |\n| validation | 3 | x |"
    )
    assert markdown.table(["split", "pages", "note"], rows, aligned=True) == (
        "| split      | pages | note |\n"
        "|------------|-------|------|\n"
        "| train      |    12 |      |\n"
        "| validation |     3 |    x |"
    )


def test_lazy_builds_once_under_concurrent_first_use_and_pickles_as_its_factory():
    built = []

    def factory():
        time.sleep(0.05)  # widen the window in which a second thread could start building
        built.append(object())
        return built[-1]

    lazy = Lazy(factory)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(lazy())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len(seen) == 8 and all(v is built[0] for v in seen)
    copy = pickle.loads(pickle.dumps(Lazy(dict)))
    assert copy() == {} and copy() is copy()


def test_splitmix64_matches_the_reference_sequence():
    # SplitMix64 seeded with 0 (Vigna's reference): its first outputs mix 1, 2 times the increment
    # from state 0, i.e. splitmix64(0) and splitmix64(golden).
    assert int(hashing.splitmix64(0)) == 0xE220A8397B1DCDAF
    assert int(hashing.splitmix64(hashing.GOLDEN)) == 0x6E789E6AA1B965F4
    values = hashing.splitmix64(np.arange(1000, dtype=np.uint64))
    assert values.dtype == np.uint64 and len(set(values.tolist())) == 1000
