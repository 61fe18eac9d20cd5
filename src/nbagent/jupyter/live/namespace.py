"""Which names of the user's namespace are the user's variables.

Modules, functions and classes imported from elsewhere, IPython's own names and
names starting with an underscore are left out, so `list_variables` shows what
the user made.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

from .describe import module_of

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

_ALWAYS_HIDDEN = frozenset({"In", "Out", "exit", "quit", "get_ipython"})


def _is_imported_callable(obj: Any, user_modules: set[str]) -> bool:
    import inspect

    try:
        routine_or_class = (
            inspect.isroutine(obj) or inspect.isclass(obj) or type(obj).__name__ == "ufunc"
        )
    except Exception:
        return False
    return routine_or_class and module_of(obj) not in user_modules


def _user_modules(shell: InteractiveShell) -> set[str]:
    names = {"__main__"}
    module = getattr(shell, "user_module", None)
    if module is not None and isinstance(getattr(module, "__name__", None), str):
        names.add(module.__name__)
    return names


def visible_names(shell: InteractiveShell) -> list[str]:
    ns = shell.user_ns
    hidden = getattr(shell, "user_ns_hidden", {}) or {}
    user_modules = _user_modules(shell)
    missing = object()
    names = []
    for name, value in list(ns.items()):
        if not isinstance(name, str) or name.startswith("_") or name in _ALWAYS_HIDDEN:
            continue
        if name in hidden and hidden.get(name, missing) is value:
            continue
        if isinstance(value, types.ModuleType):
            continue
        if _is_imported_callable(value, user_modules):
            continue
        names.append(name)
    return sorted(names, key=lambda n: (n.lower(), n))
