"""importlib's per-module import locks, read and moved by the warm-up: which thread holds
or waits for which module's lock (CPython's `importlib._bootstrap._module_locks`)."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any


def others_need(thread: int, packages: list[str]) -> bool:
    """Another thread waits for an import lock `thread` holds, or holds the import lock
    of a module in or under `packages` (it is importing a submodule of a package
    `thread` is half-way through: taking the package out of sys.modules now would
    leave that import without its parent)."""
    locks = module_locks()
    if locks is None:
        return False
    under = tuple(name + "." for name in packages)
    for name, ref in list(locks.items()):
        lock = ref()
        if lock is None:
            continue
        owner = getattr(lock, "owner", None)
        if owner == thread:
            if getattr(lock, "waiters", None):
                return True
        elif owner is not None and (name in packages or name.startswith(under)):
            return True
    return False


def locks_held_by(thread: int) -> list[str]:
    """The modules whose import lock `thread` holds."""
    locks = module_locks()
    if locks is None:
        return []
    held = []
    for name, ref in list(locks.items()):
        lock = ref()
        if lock is not None and getattr(lock, "owner", None) == thread:
            held.append(name)
    return held


def held_by_other(ref: Any, thread: int | None) -> bool:
    """An import lock (a weak reference from importlib's table) that is alive and not
    the one `thread` took for the import under way."""
    lock = ref() if ref is not None else None
    return lock is not None and (thread is None or getattr(lock, "owner", None) != thread)


def module_locks() -> dict[str, Any] | None:
    locks = getattr(importlib._bootstrap, "_module_locks", None)  # type: ignore[attr-defined]
    return locks if isinstance(locks, dict) else None


@contextlib.contextmanager
def import_lock() -> Iterator[None]:
    import _imp

    _imp.acquire_lock()
    try:
        yield
    finally:
        _imp.release_lock()
