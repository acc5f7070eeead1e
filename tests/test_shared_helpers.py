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


def test_import_without_leaves_optional_modules_out_only_while_importing(tmp_path, monkeypatch):
    import sys

    from c4clean.lazy import import_without

    (tmp_path / "c4t_extra.py").write_text("VALUE = 1\n")
    (tmp_path / "c4t_library.py").write_text(
        "try:\n    import c4t_extra\n    HAS_EXTRA = True\nexcept ImportError:\n    HAS_EXTRA = False\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        library = import_without("c4t_library", ("c4t_extra",))
        assert library.HAS_EXTRA is False and "c4t_extra" not in sys.modules
        import c4t_extra  # importable as usual after

        assert c4t_extra.VALUE == 1
        assert import_without("c4t_library", ("c4t_extra",)) is library  # imported once
    finally:
        for name in ("c4t_library", "c4t_extra"):
            sys.modules.pop(name, None)


def test_import_submodule_runs_the_package_init_only_when_another_name_is_used(tmp_path, monkeypatch):
    import sys

    from c4clean.lazy import import_submodule

    package = tmp_path / "c4t_package"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("import c4t_heavy\nfrom c4t_package import light\nEXTRA = 'x'\n")
    (package / "light.py").write_text("ANSWER = 42\n")
    (package / "inner" / "__init__.py").write_text("raise RuntimeError('inner package init ran')\n")
    (package / "inner" / "leaf.py").write_text("from c4t_package import light\nVALUE = light.ANSWER + 1\n")
    (tmp_path / "c4t_heavy.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        leaf = import_submodule("c4t_package.inner.leaf")
        assert leaf.VALUE == 43 and "c4t_heavy" not in sys.modules  # no package __init__ ran
        import c4t_package

        assert c4t_package.EXTRA == "x" and "c4t_heavy" in sys.modules  # ran on first use of a name
        assert c4t_package.light.ANSWER == 42 and c4t_package.inner.leaf is leaf
    finally:
        for name in [m for m in sys.modules if m.startswith(("c4t_package", "c4t_heavy"))]:
            del sys.modules[name]
