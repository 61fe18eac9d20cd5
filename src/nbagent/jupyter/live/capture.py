"""Capturing what a run of code in the user's shell prints, displays and raises.

`capture(shell)` is `IPython.utils.capture.capture_output` for a given shell that
also keeps the last expression's value and the tracebacks, and leaves the outer
cell's state (`Out`, `_`, its result and error) as it was; figures a run creates
but does not show are rendered here too.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

log = logging.getLogger("nbagent.jupyter")

_KERNEL_ERROR_ATTRS = ("_last_traceback", "_last_traceback_during_displayhook")


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


class Captured:
    def __init__(self) -> None:
        self.stdout = ""
        self.stderr = ""
        self.displays: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []
        self.tracebacks: list[tuple[type, BaseException, list[str]]] = []


@contextlib.contextmanager
def capture(shell: InteractiveShell) -> Iterator[Captured]:
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

    captured = Captured()
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


def open_figures() -> set[int]:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return set()
    try:
        return set(plt.get_fignums())
    except Exception:
        return set()


def render_new_figures(before: set[int]) -> list[dict[str, Any]]:
    """PNG bundles of the figures the run created but did not show (non-inline backends,
    or `plt.figure()` without a draw); they are closed, as the inline backend would."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    from io import BytesIO

    from matplotlib._pylab_helpers import Gcf

    bundles = []
    for num in sorted(open_figures() - before):
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
