"""Values built on first use, once per process (packaged models and tables that cost time to load),
and modules imported without their package's slow `__init__`."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Callable, Generic, Iterator, Optional, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """`Lazy(factory)()` builds the value on the first call and returns the same object after.

    Thread-safe (Beam runs a worker's bundles on several threads): concurrent first calls build it
    once. Pickles as its factory, so a worker that unpickles one builds its own value.
    """

    def __init__(self, factory: Callable[[], T]):
        self._factory = factory
        self._value: Optional[T] = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._factory()
                value = self._value
        return value

    def __reduce__(self):
        return (Lazy, (self._factory,))


_deferring = threading.RLock()


@contextlib.contextmanager
def left_out(names: tuple[str, ...]) -> Iterator[None]:
    """The modules `names` that are not imported yet, marked missing while the block runs (`import` of
    one raises ImportError, as if it were not installed); they import as usual afterwards. For optional
    extras that a library imports when they are installed, for features c4clean never uses."""
    with _deferring:
        marked = [m for m in names if m not in sys.modules]
        for module in marked:
            sys.modules[module] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        with _deferring:
            for module in marked:
                if sys.modules.get(module, ...) is None:
                    del sys.modules[module]


def import_without(name: str, extras: tuple[str, ...]) -> ModuleType:
    """Imports the module `name`, if not imported yet, with the modules `extras` `left_out`."""
    if name in sys.modules:
        return sys.modules[name]
    with left_out(extras):
        return importlib.import_module(name)


def import_submodule(name: str) -> ModuleType:
    """Imports the module `name` ("package.sub.module") without running the `__init__` of its packages
    that are not imported yet; each such package runs it on first use of a name that is not one of
    its submodules (so `import package` and `from package import X` still work as usual after).

    Why: NLTK's and datasketch's `__init__` import all of the library, SciPy included (~0.7 s each, in
    every worker process, before any run can start its work), for modules (Punkt, MinHash) that need
    a few of their siblings and NumPy only.
    """
    with _deferring:
        parts = name.split(".")
        for depth in range(1, len(parts)):
            package = ".".join(parts[:depth])
            if package not in sys.modules:
                sys.modules[package] = _deferred_package(package)
                if depth > 1:  # as the import system binds a subpackage it imports to its parent
                    setattr(sys.modules[".".join(parts[: depth - 1])], parts[depth - 1], sys.modules[package])
        return importlib.import_module(name)


def _deferred_package(package: str) -> ModuleType:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(f"no package named {package!r}")
    module = importlib.util.module_from_spec(spec)

    def __getattr__(attribute: str):  # module-level __getattr__ (PEP 562): only for missing names
        with _deferring:
            if importlib.util.find_spec(f"{package}.{attribute}") is not None:
                return importlib.import_module(f"{package}.{attribute}")
            if module.__dict__.pop("__getattr__", None) is not None:
                spec.loader.exec_module(module)  # the package's `__init__`, now
        try:
            return module.__dict__[attribute]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {attribute!r}") from None

    module.__getattr__ = __getattr__
    return module
