"""The configuration of this process, in one place: what was handed in, and what is built
from it.

Beside the broker (`taskpipes.runtime.current`) and the registry of declarations, this is
the kit's only global, as Dramatiq's broker is Dramatiq's. It holds two things:

- the *given* parts: what a host application handed in (`taskpipes.configure(settings=...,
  engine=...)`) or the process set about itself (the pool size a worker asks for);
- the *derived* values: the settings read from the environment, the engine, its session
  factory, the metrics, ..., each built on first use by the module that knows how
  (`derived(key, build)`) and kept until the configuration changes.

Whenever a given part changes, every derived value is dropped (and closed: an engine is
disposed) and built again on next use, so nothing can outlive the configuration it came
from. `reset()` forgets the given parts too: the next use reads the environment again. A
test that changes the environment calls `taskpipes.testing.reset()`, which calls it; no
other module keeps a cache that depends on configuration.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

T = TypeVar("T")

# A derived value not built yet (None is a value a builder may return).
_MISSING = object()


class Configuration:
    """Given parts by name, and the values derived from them by key."""

    def __init__(self) -> None:
        # Re-entrant: building the session factory builds the engine under the same lock.
        self._lock = threading.RLock()
        self._given: dict[str, object] = {}
        self._derived: dict[Hashable, object] = {}
        self._closers: list[Callable[[], None]] = []

    def given(self, part: str) -> Any:
        """What was handed in for `part` (e.g. "settings", "engine"), or None."""
        return self._given.get(part)

    def give(self, **parts: object) -> None:
        """Hand in parts (a None part withdraws it); every derived value is built again."""
        with self._lock:
            for part, value in parts.items():
                if value is None:
                    self._given.pop(part, None)
                else:
                    self._given[part] = value
            self._drop_derived()

    def derived(
        self, key: Hashable, build: Callable[[], T], close: Callable[[T], None] | None = None
    ) -> T:
        """The value under `key`, built by `build()` on first use and kept until the
        configuration changes; then `close(value)` runs, if given (an engine's dispose)."""
        try:
            return self._derived[key]  # type: ignore[return-value]  # the common case: no lock
        except KeyError:
            pass
        with self._lock:
            found = self._derived.get(key, _MISSING)
            if found is _MISSING:
                found = build()
                self._derived[key] = found
                if close is not None:
                    value = cast(T, found)
                    self._closers.append(lambda: close(value))
            return cast(T, found)

    def reset(self) -> None:
        """Forget everything given and derived: the next use reads the environment."""
        with self._lock:
            self._given.clear()
            self._drop_derived()

    def _drop_derived(self) -> None:
        closers, self._closers = self._closers, []
        self._derived.clear()
        for close in reversed(closers):
            close()


# The one configuration of this process.
configuration = Configuration()
