"""Values built on first use, once per process (packaged models and tables that cost time to load)."""

from __future__ import annotations

import threading
from typing import Callable, Generic, Optional, TypeVar

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
