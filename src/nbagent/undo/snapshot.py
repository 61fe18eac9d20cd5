"""What `run_python` may change in the user's namespace, and copies to undo it with.

Before the code runs:
- every visible name's value is remembered by reference (free: the namespace holds it
  too), so a name the code rebinds or deletes, by any means, can be put back;
- the names the code refers to (read from its syntax tree, after IPython's own
  transformations) are copied where a copy is cheap and safe: pandas and numpy objects,
  and lists, dicts and sets of plain values. Immutable values need no copy. Anything
  else (open files, connections, models, arbitrary objects) is never copied: a copy
  could be wrong or have side effects.
Copies stop at the turn's size limit; after the run, the old values that only the
snapshot still holds count against the same limit, since the snapshot keeps them alive.
"""

from __future__ import annotations

import ast
import copy
import inspect
import re
import sys
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any

from ..render.format import human_size

_IMMUTABLE_ATOMS = (type(None), bool, int, float, complex, str, bytes, range, type(...))
_PLAIN_CONTAINERS = (list, dict, set, frozenset, tuple, bytearray, deque, OrderedDict)
_MAX_WALK = 100_000  # elements looked at to decide that a container is plain
# IPython's output caches and history names (`_`, `__`, `_i`, `_i3`, `_3`, ...).
_IPYTHON_NAME = re.compile(r"^(_+|_i+|_i?\d+|_oh|_ih|_dh|In|Out|exit|quit|get_ipython)$")


# -- what the code refers to ---------------------------------------------------------


@dataclass
class CodeNames:
    loaded: set[str] = field(default_factory=set)  # read (and so maybe changed in place)
    stored: set[str] = field(default_factory=set)  # assigned or deleted
    changed_in_place: set[str] = field(default_factory=set)  # x.a = , x[k] = , x += , x.m()


def code_names(code: str, transform: Callable[[str], str] | None = None) -> CodeNames | None:
    """The names `code` refers to, or None if it does not parse (even after `transform`,
    IPython's cell transformation for magics and `!commands`)."""
    tree = _parse(code, transform)
    if tree is None:
        return None
    names = CodeNames()
    for node in _walk_with_magics(tree):
        if isinstance(node, ast.Name):
            (names.loaded if isinstance(node.ctx, ast.Load) else names.stored).add(node.id)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            names.stored.update(node.names)
        elif isinstance(node, ast.Attribute | ast.Subscript) and not isinstance(node.ctx, ast.Load):
            base = _base_name(node)
            if base:
                names.changed_in_place.add(base)
        elif isinstance(node, ast.AugAssign):
            base = _base_name(node.target)
            if base:
                names.changed_in_place.add(base)
                names.loaded.add(base)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = _base_name(node.func.value)
            if base:
                names.changed_in_place.add(base)
    return names


def _walk_with_magics(tree: ast.AST) -> list[ast.AST]:
    """The tree's nodes, plus those of Python code passed to magics as a string
    (`%time x = f()` becomes `get_ipython().run_line_magic('time', 'x = f()')`)."""
    nodes = list(ast.walk(tree))
    for node in list(nodes):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("run_line_magic", "run_cell_magic")
        ):
            for arg in node.args[1:]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value:
                    try:
                        nodes.extend(ast.walk(ast.parse(arg.value)))
                    except (SyntaxError, ValueError):
                        continue
    return nodes


def _parse(code: str, transform: Callable[[str], str] | None) -> ast.AST | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        pass
    if transform is None:
        return None
    try:
        return ast.parse(transform(code))
    except Exception:  # IPython syntax that still does not parse: nothing is known
        return None


def _base_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def tracked(name: str, hidden: Container[str]) -> bool:
    """A user variable (not one of IPython's caches or hidden names)."""
    dunder = name.startswith("__") and name.endswith("__")  # __builtins__, __name__
    return not dunder and name not in hidden and not _IPYTHON_NAME.match(name)


# -- copies ---------------------------------------------------------------------------


def needs_no_copy(value: Any) -> bool:
    """Values whose content cannot change (or whose changes are not the user's data:
    modules, functions and classes), so the reference alone restores them."""
    if isinstance(value, _IMMUTABLE_ATOMS):
        return True
    if inspect.ismodule(value) or inspect.isclass(value) or inspect.isroutine(value):
        return True
    if isinstance(value, tuple | frozenset):
        return all(needs_no_copy(v) for v in _bounded(value))
    return False


def copy_refusal(value: Any) -> str | None:
    """None if `value` can be copied cheaply and safely, else why not."""
    if _is_pandas(value) or _is_ndarray(value):
        if _is_ndarray(value) and value.dtype == object:
            return "a numpy array of Python objects cannot be copied safely"
        return None
    if isinstance(value, _PLAIN_CONTAINERS):
        return (
            None
            if _plain(value)
            else f"this {type(value).__name__} holds objects that cannot be copied safely"
        )
    return f"a {type_label(value)} cannot be copied safely"


def make_copy(value: Any) -> Any:
    if _is_pandas(value):
        return value.copy(deep=True)
    if _is_ndarray(value):
        return value.copy()
    return copy.deepcopy(value)


def differs(snapshot: Any, current: Any) -> bool:
    """True if `current` no longer equals the copy taken before the run."""
    try:
        if type(snapshot) is not type(current):
            return True
        if _is_pandas(current):
            return not bool(snapshot.equals(current))
        if _is_ndarray(current):
            import numpy as np

            if snapshot.shape != current.shape or snapshot.dtype != current.dtype:
                return True
            nan_ok = current.dtype.kind in "fc"
            return not bool(np.array_equal(snapshot, current, equal_nan=nan_ok))
        return bool(snapshot != current)
    except Exception:  # a comparison that fails is treated as a change
        return True


def fingerprint(value: Any) -> bytes | None:
    """A checksum of a large array's or frame's values, to tell whether the code changed
    it without keeping a copy; None for other values. CRC-32 per buffer: it reads at
    memory speed, where a cryptographic hash would cost several times the run."""
    try:
        if _is_ndarray(value):
            return _array_checksum(value)
        if _is_pandas(value):
            return _pandas_checksum(value)
    except Exception:
        return None
    return None


def _array_checksum(array: Any) -> bytes | None:
    import numpy as np

    if array.dtype == object:
        return None
    crc = zlib.crc32(np.ascontiguousarray(array).data)
    return repr((array.shape, array.dtype.str, crc)).encode()


def _pandas_checksum(value: Any) -> bytes:
    import pandas as pd

    columns = [value] if not hasattr(value, "columns") else [value[c] for c in value.columns]
    parts: list[Any] = [type(value).__name__, getattr(value, "shape", None)]
    if hasattr(value, "columns"):
        parts.append(repr(list(value.columns)))
    if not isinstance(value, pd.Index):
        parts.append(_index_checksum(value.index))
    for column in columns:
        values = column.to_numpy() if hasattr(column, "to_numpy") else column
        checksum = _array_checksum(values) if hasattr(values, "dtype") else None
        if checksum is None:  # object columns: pandas' own hashing, slower
            hashed = pd.util.hash_pandas_object(pd.Series(values), index=False).to_numpy()
            checksum = repr(zlib.crc32(hashed.data)).encode()
        parts.append((str(getattr(column, "dtype", "")), checksum))
    return repr(parts).encode()


def _index_checksum(index: Any) -> Any:
    import pandas as pd

    if isinstance(index, pd.RangeIndex):
        return repr(index)
    return _pandas_checksum(index)


# -- sizes and descriptions ------------------------------------------------------------


def size_of(value: Any) -> int:
    """Bytes `value` holds: deep for pandas, numpy's buffer, a bounded walk otherwise."""
    try:
        if _is_pandas(value):
            usage = value.memory_usage(deep=True)
            return int(usage.sum()) if hasattr(usage, "sum") else int(usage)
        if _is_ndarray(value):
            return int(value.nbytes)
    except Exception:
        return sys.getsizeof(value, 0)
    total = 0
    seen: set[int] = set()
    stack = [value]
    steps = 0
    while stack and steps < _MAX_WALK:
        item = stack.pop()
        steps += 1
        if id(item) in seen:
            continue
        seen.add(id(item))
        try:
            total += sys.getsizeof(item, 0)
        except Exception:
            continue
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset | deque):
            stack.extend(item)
        elif _is_pandas(item) or _is_ndarray(item):
            total += size_of(item)
    return total


def describe(value: Any) -> str:
    """A short description: `DataFrame (100, 3)`, `list len 5`, `int 42`."""
    label = type_label(value)
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape):
        return f"{label} {shape}"
    if isinstance(value, bool | int | float | complex | type(None)):
        return f"{label} {value!r}"[:80]
    if isinstance(value, str | bytes):
        text = repr(value)
        return f"{label} {text[:60] + '...' if len(text) > 60 else text}"
    try:
        return f"{label} len {len(value)}"
    except Exception:
        return label


def type_label(value: Any) -> str:
    if inspect.ismodule(value):
        return "module"
    if inspect.isclass(value):
        return "class"
    if inspect.isroutine(value):
        return "function"
    return type(value).__name__


def too_large(size: int, limit: int) -> str:
    return (
        f"it is too large to keep a copy ({human_size(size)}; the undo_snapshot_mb limit "
        f"is {human_size(limit)})"
    )


# -- helpers ---------------------------------------------------------------------------


def _is_pandas(value: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.DataFrame | pd.Series | pd.Index)


def _is_ndarray(value: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, np.ndarray)


def _bounded(values: Any) -> list[Any]:
    out = []
    for i, v in enumerate(values):
        if i >= _MAX_WALK:
            break
        out.append(v)
    return out


def _plain(value: Any) -> bool:
    """Only immutable atoms and plain containers inside (so a deepcopy is exact and safe)."""
    stack = [value]
    steps = 0
    while stack:
        item = stack.pop()
        steps += 1
        if steps > _MAX_WALK:
            return False
        if isinstance(item, (*_IMMUTABLE_ATOMS, bytearray)):
            continue
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, _PLAIN_CONTAINERS):
            stack.extend(item)
        else:
            return False
    return True
