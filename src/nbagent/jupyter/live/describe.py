"""Describing a value of the user's namespace for the model, in a few lines or in detail.

`describe_value` gives the detail `inspect_variable` returns (DataFrame, Series,
ndarray, mapping, collection, text, any object); `type_name`, `shape_text`,
`nbytes` and `info` fill the rows of `list_variables`. pandas and numpy are only
touched when the value comes from them, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from ...render.format import clip, human_size
from ...tools.clip import clip_text


def module_of(obj: Any) -> str | None:
    try:
        module = getattr(obj, "__module__", None)
    except Exception:
        return None
    return module if isinstance(module, str) else None


def _is_pandas(obj: Any, kind: str) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, getattr(pd, kind))


def _is_ndarray(obj: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(obj, np.ndarray)


def type_name(obj: Any) -> str:
    import inspect

    if inspect.isclass(obj):
        return "class"
    if inspect.isroutine(obj):
        return "function"
    return type(obj).__name__


def shape_text(obj: Any) -> str:
    try:
        shape = getattr(obj, "shape", None)
        if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape):
            return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
        if isinstance(obj, (str, bytes, list, tuple, dict, set, frozenset, range)):
            return f"len {len(obj)}"
    except Exception:
        pass
    return ""


def nbytes(obj: Any) -> int | None:
    try:
        if _is_pandas(obj, "DataFrame") or _is_pandas(obj, "Series"):
            usage = obj.memory_usage(deep=True)
            return int(usage.sum()) if hasattr(usage, "sum") else int(usage)
        if _is_ndarray(obj):
            return int(obj.nbytes)
        return int(sys.getsizeof(obj))
    except Exception:
        return None


def short_repr(value: Any, limit: int = 60) -> str:
    """`repr(value)` on one line, clipped to `limit` characters."""
    try:
        text = repr(value)
    except Exception as exc:
        text = f"<repr failed: {type(exc).__name__}>"
    return clip(" ".join(text.split()), limit)


def variable_hint(obj: Any) -> str:
    """A short hint for the table's last column."""
    try:
        if _is_pandas(obj, "DataFrame"):
            cols = [str(c) for c in obj.columns[:8]]
            more = f", ... (+{len(obj.columns) - 8})" if len(obj.columns) > 8 else ""
            return "columns: " + ", ".join(cols) + more
        if _is_pandas(obj, "Series"):
            return f"dtype {obj.dtype}" + (f", name {obj.name!r}" if obj.name is not None else "")
        if _is_ndarray(obj):
            return f"dtype {obj.dtype}"
        if isinstance(obj, (bool, int, float, complex, str, bytes, type(None))):
            return short_repr(obj)
        import inspect

        if inspect.isroutine(obj) or inspect.isclass(obj):
            try:
                return obj.__name__ + str(inspect.signature(obj))
            except (TypeError, ValueError):
                return getattr(obj, "__name__", "")
    except Exception:
        pass
    return ""


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _section(title: str, body: str) -> str:
    return f"{title}:\n{body.rstrip()}"


def _safe(title: str, fn: Callable[[], str]) -> str:
    try:
        return _section(title, fn())
    except Exception as exc:
        return f"{title}: (failed: {type(exc).__name__}: {exc})"


def _describe_dataframe(df: Any) -> str:
    import pandas as pd

    opts = {"max_cols": 30, "max_colwidth": 40, "line_width": 200}
    parts = [
        f"pandas.DataFrame, shape {df.shape} ({df.shape[0]:,} rows x {df.shape[1]:,} columns), "
        f"memory {human_size(nbytes(df))}",
        f"index: {type(df.index).__name__}, "
        + (f"{df.index[0]!r} .. {df.index[-1]!r}" if len(df.index) else "empty"),
    ]

    def dtypes() -> str:
        return df.dtypes.to_string(max_rows=200)

    def missing() -> str:
        counts = df.isna().sum()
        if not counts.any():
            return "none"
        nz = counts[counts > 0]
        pct = (nz / max(len(df), 1) * 100).round(1)
        return pd.DataFrame({"missing": nz, "%": pct}).to_string(max_rows=200)

    parts.append(_safe("dtypes", dtypes))
    parts.append(_safe("head(5)", lambda: df.head(5).to_string(**opts)))
    parts.append(_safe("missing values per column", missing))
    numeric = df.select_dtypes(include="number")
    if numeric.shape[1]:
        parts.append(_safe("describe() (numeric)", lambda: numeric.describe().to_string(**opts)))
    other = df.select_dtypes(exclude="number")
    if other.shape[1] and len(df):
        parts.append(_safe("describe() (non-numeric)", lambda: other.describe().to_string(**opts)))
    return "\n\n".join(parts)


def _describe_series(s: Any) -> str:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    parts = [
        f"pandas.Series, name {s.name!r}, dtype {s.dtype}, length {len(s):,}, "
        f"missing {int(s.isna().sum()):,}, memory {human_size(nbytes(s))}",
        _safe("head(10)", lambda: s.head(10).to_string()),
    ]
    numeric = is_numeric_dtype(s.dtype) and not is_bool_dtype(s.dtype)
    if numeric:
        parts.append(_safe("describe()", lambda: s.describe().to_string()))
    try:
        unique = int(s.nunique(dropna=True))
    except Exception:
        unique = -1
    if unique >= 0 and (not numeric or unique <= 20):
        title = f"value_counts() ({unique:,} distinct)"
        parts.append(_safe(title, lambda: s.value_counts(dropna=False).head(20).to_string()))
    if not numeric and unique > 20:
        parts.append(_safe("describe()", lambda: s.describe().to_string()))
    return "\n\n".join(parts)


def _describe_ndarray(a: Any) -> str:
    import numpy as np

    parts = [
        f"numpy.ndarray, shape {a.shape}, dtype {a.dtype}, size {a.size:,}, "
        f"memory {human_size(int(a.nbytes))}"
    ]
    if a.size and (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        try:
            values = a.astype(float) if a.dtype == bool else a
            if np.iscomplexobj(values):
                values = np.abs(values)
                parts.append("(stats of absolute values)")
            nans = int(np.isnan(values).sum()) if np.issubdtype(values.dtype, np.floating) else 0
            stats = (
                f"min {_num(np.nanmin(values))}, max {_num(np.nanmax(values))}, "
                f"mean {_num(np.nanmean(values))}, std {_num(np.nanstd(values))}"
            )
            parts.append(stats + (f", NaN {nans:,}" if nans else ""))
        except Exception as exc:
            parts.append(f"(stats failed: {type(exc).__name__}: {exc})")
    with np.printoptions(threshold=200, edgeitems=3, linewidth=120):
        parts.append(_section("preview", repr(a)))
    return "\n\n".join(parts)


def _num(x: Any) -> str:
    value = x.item() if hasattr(x, "item") else x
    return f"{value:.6g}" if isinstance(value, float) else repr(value)


def _describe_mapping(d: dict[Any, Any]) -> str:
    rows = [["key", "type", "value"]]
    for key in list(d)[:30]:
        value = d[key]
        rows.append([short_repr(key, 40), type_name(value), short_repr(value, 80)])
    more = f"\n... and {len(d) - 30:,} more keys" if len(d) > 30 else ""
    head = f"{type(d).__name__}, {len(d):,} keys"
    return head if not d else f"{head}\n\n{text_table(rows)}{more}"


def _describe_collection(c: Any) -> str:
    items = list(c) if isinstance(c, (set, frozenset)) else c
    types_ = Counter(type(x).__name__ for x in items)
    kinds = ", ".join(f"{n} x {t}" for t, n in types_.most_common(10))
    parts = [f"{type(c).__name__}, length {len(c):,}" + (f"; element types: {kinds}" if c else "")]
    if c:
        shown = [f"[{i}] {short_repr(x, 200)}" for i, x in enumerate(items[:20])]
        more = f"\n... and {len(c) - 20:,} more" if len(c) > 20 else ""
        parts.append(_section("first items", "\n".join(shown) + more))
    return "\n\n".join(parts)


def _describe_text(s: str | bytes) -> str:
    kind = "str" if isinstance(s, str) else "bytes"
    lines = (s.count("\n") if isinstance(s, str) else s.count(b"\n")) + 1 if s else 0
    preview = s[:2000]
    body = preview if isinstance(preview, str) else repr(preview)
    more = f"\n[... {len(s) - 2000:,} more characters]" if len(s) > 2000 else ""
    return f"{kind}, length {len(s):,}, {lines:,} lines\n\n" + _section("preview", body + more)


def _describe_other(obj: Any) -> str:
    import inspect

    cls = type(obj)
    if obj is None or isinstance(obj, (bool, int, float, complex)):
        return f"{cls.__name__}, value {short_repr(obj, 2000)}"
    parts = [f"type {cls.__module__}.{cls.__qualname__}"]
    if inspect.isroutine(obj) or inspect.isclass(obj):
        with contextlib.suppress(TypeError, ValueError):
            parts.append(f"signature: {getattr(obj, '__name__', '?')}{inspect.signature(obj)}")
        doc = inspect.getdoc(obj)
        if doc:
            parts.append(_section("docstring", clip_text(doc, 1500)))
        if module_of(obj) == "__main__":
            with contextlib.suppress(Exception):
                parts.append(_section("source", clip_text(inspect.getsource(obj), 4000)))
    parts.append(_section("repr", short_repr(obj, 2000)))
    try:
        public = [a for a in dir(obj) if not a.startswith("_")]
    except Exception:
        public = []
    if public:
        attrs: list[str] = []
        methods: list[str] = []
        for a in public[:200]:
            try:
                value = getattr(obj, a)
            except Exception:
                attrs.append(a)
                continue
            (methods if callable(value) else attrs).append(a)
        if attrs:
            parts.append(_section("attributes", ", ".join(attrs)))
        if methods:
            parts.append(_section("methods", ", ".join(methods)))
    return "\n\n".join(parts)


def describe_value(obj: Any) -> str:
    if _is_pandas(obj, "DataFrame"):
        return _describe_dataframe(obj)
    if _is_pandas(obj, "Series"):
        return _describe_series(obj)
    if _is_ndarray(obj):
        return _describe_ndarray(obj)
    if isinstance(obj, dict):
        return _describe_mapping(obj)
    if isinstance(obj, (list, tuple, set, frozenset)):
        return _describe_collection(obj)
    if isinstance(obj, (str, bytes)):
        return _describe_text(obj)
    return _describe_other(obj)
