"""Tools on the user's live IPython namespace: run code there, list and inspect variables.

`run_python` runs code in the user's namespace as if the user had typed it, but
quietly: the execution count, `In`/`Out`, `_` and the cell's own output stay as
they were; stdout, stderr, display outputs, the last expression's value and any
error are captured and returned to the model (images as image blocks). It is
meant to run nested inside a running cell (the `%%agent` cell).

pandas and numpy are only touched when the user's objects come from them, so
importing this module stays cheap.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import sys
import types
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..events import ToolOutput
from ..tools.base import Tool, ToolError, tool
from ..tools.clip import clip_text

if TYPE_CHECKING:
    from IPython.core.interactiveshell import ExecutionResult, InteractiveShell

log = logging.getLogger("nbagent.jupyter")

DisplayCallback = Callable[[list[dict[str, Any]]], None]

TRACEBACK_LINES = 30
MAX_IMAGES = 10
MAX_IMAGE_B64 = 5_000_000  # the Messages API's per-image limit is 5 MB
IMAGE_MIMES = ("image/png", "image/jpeg")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
_DEFAULT_REPR = re.compile(r"^<[\w.]+ (object|at 0x)[^>]*>$")
_ALWAYS_HIDDEN = frozenset({"In", "Out", "exit", "quit", "get_ipython"})
_KERNEL_ERROR_ATTRS = ("_last_traceback", "_last_traceback_during_displayhook")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


# --------------------------------------------------------------------------- capture


class _ResultHook:
    """A `sys.displayhook` that keeps the last expression's value for us instead of
    printing `Out[n]` and updating `_`, `Out` and `_oh`."""

    def __init__(self, shell: InteractiveShell) -> None:
        self.shell = shell
        self.results: list[dict[str, Any]] = []
        self.exec_result: Any = None

    def __call__(self, value: Any = None) -> None:
        if value is None:
            return
        try:
            data, metadata = self.shell.display_formatter.format(value)  # type: ignore[union-attr]
        except Exception as exc:  # a broken _repr_*_ must not lose the run
            data, metadata = {"text/plain": f"<unprintable {type(value).__name__}: {exc}>"}, {}
        self.results.append({"data": data, "metadata": metadata})


class _Captured:
    def __init__(self) -> None:
        self.stdout = ""
        self.stderr = ""
        self.displays: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []
        self.tracebacks: list[tuple[type, BaseException, list[str]]] = []


@contextlib.contextmanager
def _capture(shell: InteractiveShell) -> Iterator[_Captured]:
    """Like `IPython.utils.capture.capture_output`, for `shell` (not `get_ipython()`),
    and also catching the last expression's value and the tracebacks.

    - `sys.displayhook` and the shell's `display_trap.hook`: when not nested, `run_cell`
      would otherwise install the shell's real displayhook (`Out[n]`, `_`, `_oh`).
    - `shell._showtraceback`: in a kernel it sends an `error` message straight to the
      frontend, which would put a traceback in the agent's cell.
    - `shell.displayhook.exec_result`: a nested `run_cell` resets it to None, which
      would lose the outer cell's result.
    """
    from io import StringIO

    from IPython.core.displaypub import CapturingDisplayPublisher

    captured = _Captured()
    out, err = StringIO(), StringIO()
    hook = _ResultHook(shell)
    pub = CapturingDisplayPublisher()
    saved_stdout, saved_stderr, saved_hook = sys.stdout, sys.stderr, sys.displayhook
    saved_pub = shell.display_pub
    trap = getattr(shell, "display_trap", None)
    saved_trap_hook = trap.hook if trap is not None else None
    real_displayhook = shell.displayhook
    saved_exec_result = getattr(real_displayhook, "exec_result", None)
    # ipykernel's run_cell resets these on the shell; they belong to the outer cell.
    saved_attrs = {a: shell.__dict__[a] for a in _KERNEL_ERROR_ATTRS if a in shell.__dict__}
    had_instance_showtb = "_showtraceback" in shell.__dict__
    saved_showtb = shell.__dict__.get("_showtraceback")

    def showtraceback(etype: type, evalue: BaseException, stb: list[str]) -> None:
        captured.tracebacks.append((etype, evalue, list(stb)))

    try:
        sys.stdout, sys.stderr, sys.displayhook = out, err, hook
        shell.display_pub = pub
        if trap is not None:
            trap.hook = hook
        shell._showtraceback = showtraceback  # type: ignore[method-assign,assignment]
        yield captured
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        sys.stdout, sys.stderr, sys.displayhook = saved_stdout, saved_stderr, saved_hook
        shell.display_pub = saved_pub
        if trap is not None:
            trap.hook = saved_trap_hook
        if had_instance_showtb:
            shell._showtraceback = saved_showtb  # type: ignore[method-assign,assignment]
        else:
            with contextlib.suppress(AttributeError):
                del shell._showtraceback
        with contextlib.suppress(Exception):
            real_displayhook.exec_result = saved_exec_result
        for attr in _KERNEL_ERROR_ATTRS:
            if attr in saved_attrs:
                setattr(shell, attr, saved_attrs[attr])
        captured.stdout = out.getvalue()
        captured.stderr = err.getvalue()
        captured.displays = list(pub.outputs)
        captured.results = hook.results


def _open_figures() -> set[int]:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return set()
    try:
        return set(plt.get_fignums())
    except Exception:
        return set()


def _render_new_figures(before: set[int]) -> list[dict[str, Any]]:
    """PNG bundles of the figures the run created but did not show (non-inline backends,
    or `plt.figure()` without a draw); they are closed, as the inline backend would."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    from io import BytesIO

    from matplotlib._pylab_helpers import Gcf

    bundles = []
    for num in sorted(_open_figures() - before):
        manager = Gcf.get_fig_manager(num)
        if manager is None:
            continue
        fig = manager.canvas.figure
        try:
            buf = BytesIO()
            fig.savefig(buf, format="png", bbox_inches="tight")
            data = {
                "text/plain": repr(fig),
                "image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
            }
            bundles.append({"data": data, "metadata": {}})
        except Exception as exc:
            log.warning("could not render figure %s: %s", num, exc)
        finally:
            plt.close(fig)
    return bundles


# --------------------------------------------------------------------------- formatting


def _image_b64(data: Any) -> str | None:
    if isinstance(data, bytes):
        if data[:4] == b"\x89PNG" or data[:3] == b"\xff\xd8\xff":
            return base64.b64encode(data).decode("ascii")
        data = data.decode("ascii", errors="ignore")
    if isinstance(data, str):
        return "".join(data.split())
    return None


def _bundle_text(data: dict[str, Any], max_chars: int, max_html_chars: int) -> str:
    """The text the model reads for one MIME bundle: text/plain unless it is only a
    default `<... object>` repr, then markdown, HTML (clipped), LaTeX or JSON."""
    plain = data.get("text/plain")
    if isinstance(plain, list):
        plain = "".join(plain)
    if isinstance(plain, str) and plain and not _DEFAULT_REPR.match(plain.strip()):
        return clip_text(plain, max_chars)
    for mime, limit in (
        ("text/markdown", max_chars),
        ("text/html", max_html_chars),
        ("text/latex", max_chars),
    ):
        value = data.get(mime)
        if isinstance(value, list):
            value = "".join(value)
        if isinstance(value, str) and value.strip():
            return f"({mime})\n" + clip_text(value, limit)
    if "application/json" in data:
        import json

        try:
            return "(application/json)\n" + clip_text(
                json.dumps(data["application/json"]), max_chars
            )
        except (TypeError, ValueError):
            pass
    others = [m for m in data if m not in ("text/plain", *IMAGE_MIMES)]
    text = plain if isinstance(plain, str) else ""
    if others:
        text = (text + "\n" if text else "") + f"[output types: {', '.join(others)}]"
    return text


class _Blocks:
    """Text and image content blocks, in order; consecutive text is merged."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.blocks: list[dict[str, Any]] = []
        self._text: list[str] = []
        self.images = 0

    def text(self, text: str) -> None:
        if text:
            self._text.append(text.rstrip("\n"))

    def image(self, mime: str, b64: str) -> None:
        if self.images >= MAX_IMAGES:
            self.text(f"[{mime} image left out: more than {MAX_IMAGES} images]")
            return
        if len(b64) > MAX_IMAGE_B64:
            self.text(f"[{mime} image left out: {len(b64):,} base64 characters is too large]")
            return
        self.images += 1
        self._flush()
        self.blocks.append(
            {"type": "image", "source": {"type": "base64", "media_type": mime, "data": b64}}
        )

    def _flush(self) -> None:
        if self._text:
            joined = clip_text("\n".join(self._text), self.max_chars)
            self.blocks.append({"type": "text", "text": joined})
            self._text = []

    def done(self) -> list[dict[str, Any]]:
        self._flush()
        if not self.blocks:
            self.blocks.append({"type": "text", "text": "(no output)"})
        elif self.blocks[0]["type"] != "text":
            self.blocks.insert(0, {"type": "text", "text": "(output images follow)"})
        return self.blocks


def _add_bundle(blocks: _Blocks, bundle: dict[str, Any], label: str, max_chars: int, max_html: int):
    data = bundle.get("data") or {}
    text = _bundle_text(data, max_chars, max_html)
    blocks.text(f"{label}\n{text}" if text else label)
    for mime in IMAGE_MIMES:
        if mime in data:
            b64 = _image_b64(data[mime])
            if b64:
                blocks.image(mime, b64)


def _error_of(result: ExecutionResult) -> BaseException | None:
    return result.error_before_exec or result.error_in_exec


def _one_line(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    text = type(exc).__name__ + (f": {message[0]}" if message else "")
    return text if len(text) <= 200 else text[:197] + "..."


def _traceback_text(exc: BaseException, tracebacks: list[tuple[type, BaseException, list[str]]]):
    stb = next((s for _, e, s in reversed(tracebacks) if e is exc), None)
    if stb is None and tracebacks:
        stb = tracebacks[-1][2]
    if stb:
        text = strip_ansi("\n".join(stb))
    else:
        import traceback

        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    lines = [line for line in lines if line.strip("-")]  # IPython's rule line
    if len(lines) > TRACEBACK_LINES:
        cut = len(lines) - TRACEBACK_LINES
        lines = [f"[... {cut} earlier traceback lines left out ...]", *lines[cut:]]
    return "\n".join(lines)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --------------------------------------------------------------------------- variables


def _module_of(obj: Any) -> str | None:
    try:
        module = getattr(obj, "__module__", None)
    except Exception:
        return None
    return module if isinstance(module, str) else None


def _is_imported_callable(obj: Any, user_modules: set[str]) -> bool:
    import inspect

    try:
        routine_or_class = (
            inspect.isroutine(obj) or inspect.isclass(obj) or type(obj).__name__ == "ufunc"
        )
    except Exception:
        return False
    return routine_or_class and _module_of(obj) not in user_modules


def _user_modules(shell: InteractiveShell) -> set[str]:
    names = {"__main__"}
    module = getattr(shell, "user_module", None)
    if module is not None and isinstance(getattr(module, "__name__", None), str):
        names.add(module.__name__)
    return names


def _visible_names(shell: InteractiveShell) -> list[str]:
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


def _is_pandas(obj: Any, kind: str) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, getattr(pd, kind))


def _is_ndarray(obj: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(obj, np.ndarray)


def _type_name(obj: Any) -> str:
    import inspect

    if inspect.isclass(obj):
        return "class"
    if inspect.isroutine(obj):
        return "function"
    return type(obj).__name__


def _shape(obj: Any) -> str:
    try:
        shape = getattr(obj, "shape", None)
        if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape):
            return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
        if isinstance(obj, (str, bytes, list, tuple, dict, set, frozenset, range)):
            return f"len {len(obj)}"
    except Exception:
        pass
    return ""


def _nbytes(obj: Any) -> int | None:
    try:
        if _is_pandas(obj, "DataFrame") or _is_pandas(obj, "Series"):
            usage = obj.memory_usage(deep=True)
            return int(usage.sum()) if hasattr(usage, "sum") else int(usage)
        if _is_ndarray(obj):
            return int(obj.nbytes)
        return int(sys.getsizeof(obj))
    except Exception:
        return None


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _short_repr(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except Exception as exc:
        text = f"<repr failed: {type(exc).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _info(obj: Any) -> str:
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
            return _short_repr(obj)
        import inspect

        if inspect.isroutine(obj) or inspect.isclass(obj):
            try:
                return obj.__name__ + str(inspect.signature(obj))
            except (TypeError, ValueError):
                return getattr(obj, "__name__", "")
    except Exception:
        pass
    return ""


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# --------------------------------------------------------------------------- inspect


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
        f"memory {human_size(_nbytes(df))}",
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
        f"missing {int(s.isna().sum()):,}, memory {human_size(_nbytes(s))}",
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
        rows.append([_short_repr(key, 40), _type_name(value), _short_repr(value, 80)])
    more = f"\n... and {len(d) - 30:,} more keys" if len(d) > 30 else ""
    head = f"{type(d).__name__}, {len(d):,} keys"
    return head if not d else f"{head}\n\n{_table(rows)}{more}"


def _describe_collection(c: Any) -> str:
    items = list(c) if isinstance(c, (set, frozenset)) else c
    types_ = Counter(type(x).__name__ for x in items)
    kinds = ", ".join(f"{n} x {t}" for t, n in types_.most_common(10))
    parts = [f"{type(c).__name__}, length {len(c):,}" + (f"; element types: {kinds}" if c else "")]
    if c:
        shown = [f"[{i}] {_short_repr(x, 200)}" for i, x in enumerate(items[:20])]
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
        return f"{cls.__name__}, value {_short_repr(obj, 2000)}"
    parts = [f"type {cls.__module__}.{cls.__qualname__}"]
    if inspect.isroutine(obj) or inspect.isclass(obj):
        with contextlib.suppress(TypeError, ValueError):
            parts.append(f"signature: {getattr(obj, '__name__', '?')}{inspect.signature(obj)}")
        doc = inspect.getdoc(obj)
        if doc:
            parts.append(_section("docstring", clip_text(doc, 1500)))
        if _module_of(obj) == "__main__":
            with contextlib.suppress(Exception):
                parts.append(_section("source", clip_text(inspect.getsource(obj), 4000)))
    parts.append(_section("repr", _short_repr(obj, 2000)))
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


# --------------------------------------------------------------------------- tools


def live_runner(
    shell: InteractiveShell,
    *,
    max_chars: int = 20_000,
    max_html_chars: int = 10_000,
    on_display: DisplayCallback | None = None,
) -> Callable[[str], tuple[ToolOutput, list[dict[str, Any]]]]:
    """`run(code)` in `shell`'s user namespace, returning the model's view of the run and
    the nbformat outputs a notebook cell running that code would have (what the
    notebook tools' run_cell stores). `on_display`: see `live_tools`."""

    def run(code: str) -> tuple[ToolOutput, list[dict[str, Any]]]:
        before = _open_figures()
        with _capture(shell) as cap:
            result = shell.run_cell(code, store_history=False)
        displays = list(cap.displays)
        has_png = any(
            any(m in (b.get("data") or {}) for m in IMAGE_MIMES) for b in [*displays, *cap.results]
        )
        if not has_png:
            displays.extend(_render_new_figures(before))

        if on_display is not None and displays:
            try:
                on_display([dict(b.get("data") or {}) for b in displays])
            except Exception:
                log.exception("on_display callback failed")

        error = _error_of(result)
        if isinstance(error, KeyboardInterrupt):
            raise KeyboardInterrupt

        blocks = _Blocks(max_chars)
        if cap.stdout:
            blocks.text("[stdout]\n" + clip_text(cap.stdout, max_chars))
        if cap.stderr:
            blocks.text("[stderr]\n" + clip_text(cap.stderr, max_chars))
        for i, bundle in enumerate(displays, 1):
            label = f"[display {i}]" if len(displays) > 1 else "[display]"
            _add_bundle(blocks, bundle, label, max_chars, max_html_chars)
        for bundle in cap.results:
            _add_bundle(blocks, bundle, "[Out]", max_chars, max_html_chars)
        if error is not None:
            blocks.text(f"[error] {_one_line(error)}\n{_traceback_text(error, cap.tracebacks)}")
            if isinstance(error, RuntimeError) and "already running" in str(error):
                blocks.text(
                    "[hint] Top-level `await` cannot run here: the kernel's event loop is busy "
                    "running the agent. Define an async function and run it in a thread, or "
                    "ask the user to run the cell."
                )
            content = blocks.done()
            outputs = _cell_outputs(cap, displays, error)
            return ToolOutput(content, is_error=True, summary=_one_line(error)), outputs

        n_outputs = len(displays) + len(cap.results)
        summary = ["ok"]
        if cap.stdout:
            summary.append(_plural(cap.stdout.rstrip("\n").count("\n") + 1, "line") + " printed")
        if n_outputs:
            summary.append(_plural(n_outputs, "output"))
        if blocks.images:
            summary.append(_plural(blocks.images, "image"))
        if cap.stderr:
            summary.append("stderr")
        output = ToolOutput(blocks.done(), summary=", ".join(summary))
        return output, _cell_outputs(cap, displays, None)

    return run


def _cell_outputs(
    cap: _Captured, displays: list[dict[str, Any]], error: BaseException | None
) -> list[dict[str, Any]]:
    """nbformat outputs of a run, as the user would see them in a cell (no [stdout] labels)."""
    outputs: list[dict[str, Any]] = []
    for name, text in (("stdout", cap.stdout), ("stderr", cap.stderr)):
        if text:
            outputs.append({"output_type": "stream", "name": name, "text": text})
    for bundle in displays:
        outputs.append(
            {
                "output_type": "display_data",
                "data": dict(bundle.get("data") or {}),
                "metadata": dict(bundle.get("metadata") or {}),
            }
        )
    for bundle in cap.results:
        outputs.append(
            {
                "output_type": "execute_result",
                "data": dict(bundle.get("data") or {}),
                "metadata": dict(bundle.get("metadata") or {}),
                "execution_count": None,
            }
        )
    if error is not None:
        stb = next((s for _, e, s in reversed(cap.tracebacks) if e is error), None)
        outputs.append(
            {
                "output_type": "error",
                "ename": type(error).__name__,
                "evalue": str(error),
                "traceback": list(stb or [_one_line(error)]),
            }
        )
    return outputs


def live_tools(
    shell: InteractiveShell,
    *,
    max_chars: int = 20_000,
    max_html_chars: int = 10_000,
    on_display: DisplayCallback | None = None,
) -> list[Tool]:
    """run_python, list_variables and inspect_variable, bound to `shell`'s user namespace.

    `on_display`, if given, is called after each `run_python` that produced display
    outputs (figures, HTML, `display(...)` calls) with their MIME bundles
    (`{mime: data}` dicts), so the caller can show them to the user. The last
    expression's value is not included: it goes to the model only.
    """
    execute = live_runner(
        shell, max_chars=max_chars, max_html_chars=max_html_chars, on_display=on_display
    )

    def run(code: str) -> ToolOutput:
        return execute(code)[0]

    @tool(category="execute", main_thread=True)
    def run_python(code: str) -> ToolOutput:
        """Run Python code in the user's live notebook kernel, as if the user ran a cell.

        Variables, imports and functions you define persist in the user's namespace
        (the user can use them, and so can later calls), and you can use everything
        the user has defined. IPython syntax works (%magics, !shell commands); top-level
        `await` does not. You get back stdout, stderr, the value of the last
        expression, rich outputs (plots come back as images) and errors with a
        traceback. Figures you draw are also shown to the user. Do not modify or delete
        the user's data unless asked; prefer working on copies.

        Args:
            code: The Python code to run, like the contents of a notebook cell.
        """
        return run(code)

    @tool(read_only=True, main_thread=True)
    def list_variables() -> str:
        """List the variables in the user's notebook namespace with their type, shape or length and memory size.

        Use it to see what data the user has loaded before writing code that uses it.
        Modules, imported functions and classes, IPython internals and names starting
        with an underscore are left out.
        """
        names = _visible_names(shell)
        if not names:
            return "No user variables yet."
        rows = [["name", "type", "shape/len", "size", "info"]]
        for name in names:
            value = shell.user_ns[name]
            size = _nbytes(value)
            rows.append([name, _type_name(value), _shape(value), human_size(size), _info(value)])
        header = f"{_plural(len(names), 'variable')} in the user's namespace:\n"
        return clip_text(header + _table(rows), max_chars)

    @tool(read_only=True, main_thread=True)
    def inspect_variable(name: str) -> str:
        """Describe one variable of the user's notebook namespace in detail.

        For a pandas DataFrame: shape, dtypes, the first rows, missing values per
        column and summary statistics; for a Series: dtype, head, value counts or
        statistics; for a numpy array: shape, dtype, min/max/mean and a preview; for
        dicts, lists, strings and other objects: length, element types and a preview.

        Args:
            name: The variable's name, a plain identifier such as "df" (not an
                expression like "df.col" or "d['key']"; use run_python for those).
        """
        name = name.strip()
        if not name.isidentifier():
            raise ToolError(
                f"inspect_variable takes a plain variable name, not an expression (got {name!r}). "
                "Inspect the variable itself, or use run_python to evaluate an expression."
            )
        if name not in shell.user_ns:
            raise ToolError(f"No variable named {name!r} in the user's namespace.")
        value = shell.user_ns[name]
        try:
            text = describe_value(value)
        except Exception as exc:
            text = f"type {type(value).__name__}; could not describe it ({type(exc).__name__}: {exc})\n"
            text += _short_repr(value, 2000)
        return clip_text(f"{name}: {text}", max_chars)

    return [run_python, list_variables, inspect_variable]
