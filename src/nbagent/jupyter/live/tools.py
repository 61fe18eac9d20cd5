"""Tools on the user's live IPython namespace: run code there, list and inspect variables.

`run_python` runs code in the user's namespace as if the user had typed it, but
quietly: the execution count, `In`/`Out`, `_` and the cell's own output stay as
they were; stdout, stderr, display outputs, the last expression's value and any
error are captured and returned to the model (images as image blocks). It is
meant to run nested inside a running cell (the `%%agent` cell).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...events import ToolOutput
from ...render.format import human_size
from ...tools.base import Tool, ToolError, tool
from ...tools.clip import clip_text
from ...tools.runner import summarize
from .capture import capture, open_figures, render_new_figures
from .describe import (
    describe_value,
    nbytes,
    shape_text,
    short_repr,
    text_table,
    type_name,
    variable_hint,
)
from .namespace import visible_names
from .output import (
    IMAGE_MIMES,
    ContentBlocks,
    add_bundle,
    cell_outputs,
    error_of,
    one_line,
    plural,
    traceback_text,
)

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ...undo import Recorder

log = logging.getLogger("nbagent.jupyter")

DisplayCallback = Callable[[list[dict[str, Any]]], None]


def live_runner(
    shell: InteractiveShell,
    *,
    max_chars: int = 20_000,
    max_html_chars: int = 10_000,
    on_display: DisplayCallback | None = None,
    recorder: Recorder | None = None,
) -> Callable[[str], tuple[ToolOutput, list[dict[str, Any]]]]:
    """`run(code)` in `shell`'s user namespace, returning the model's view of the run and
    the nbformat outputs a notebook cell running that code would have (what the
    notebook tools' run_cell stores). `on_display`: see `live_tools`. `recorder` keeps
    what the run changes in the namespace (the variables' values before), for undo."""

    def run(code: str) -> tuple[ToolOutput, list[dict[str, Any]]]:
        before = open_figures()
        # undo (issue 12): the names the code refers to are snapshotted before it runs.
        token = (
            recorder.python_will_run(
                code, shell.user_ns, transform=shell.transform_cell, hidden=shell.user_ns_hidden
            )
            if recorder is not None
            else None
        )
        try:
            with capture(shell) as cap:
                result = shell.run_cell(code, store_history=False)
        finally:
            if recorder is not None and token is not None:
                recorder.python_did_run(token)
        displays = list(cap.displays)
        has_png = any(
            any(m in (b.get("data") or {}) for m in IMAGE_MIMES) for b in [*displays, *cap.results]
        )
        if not has_png:
            displays.extend(render_new_figures(before))

        if on_display is not None and displays:
            try:
                on_display([dict(b.get("data") or {}) for b in displays])
            except Exception:
                log.exception("on_display callback failed")

        error = error_of(result)
        if isinstance(error, KeyboardInterrupt):
            raise KeyboardInterrupt

        blocks = ContentBlocks(max_chars)
        if cap.stdout:
            blocks.text("[stdout]\n" + clip_text(cap.stdout, max_chars))
        if cap.stderr:
            blocks.text("[stderr]\n" + clip_text(cap.stderr, max_chars))
        for i, bundle in enumerate(displays, 1):
            label = f"[display {i}]" if len(displays) > 1 else "[display]"
            add_bundle(blocks, bundle, label, max_chars, max_html_chars)
        for bundle in cap.results:
            add_bundle(blocks, bundle, "[Out]", max_chars, max_html_chars)
        if error is not None:
            blocks.text(f"[error] {one_line(error)}\n{traceback_text(error, cap.tracebacks)}")
            if isinstance(error, RuntimeError) and "already running" in str(error):
                blocks.text(
                    "[hint] Top-level `await` cannot run here: the kernel's event loop is busy "
                    "running the agent. Define an async function and run it in a thread, or "
                    "ask the user to run the cell."
                )
            content = blocks.done()
            outputs = cell_outputs(cap, displays, error)
            return ToolOutput(content, is_error=True, summary=one_line(error)), outputs

        output = ToolOutput(blocks.done())
        # What the tool line shows: the first line the code printed or returned, not
        # a status word (the line already says ok or error).
        output = ToolOutput(output.content, summary=summarize(output))
        return output, cell_outputs(cap, displays, None)

    return run


def live_tools(
    shell: InteractiveShell,
    *,
    max_chars: int = 20_000,
    max_html_chars: int = 10_000,
    on_display: DisplayCallback | None = None,
    recorder: Recorder | None = None,
) -> list[Tool]:
    """run_python, list_variables and inspect_variable, bound to `shell`'s user namespace.

    `on_display`, if given, is called after each `run_python` that produced display
    outputs (figures, HTML, `display(...)` calls) with their MIME bundles
    (`{mime: data}` dicts), so the caller can show them to the user. The last
    expression's value is not included: it goes to the model only. `recorder`: see
    `live_runner`.
    """
    execute = live_runner(
        shell,
        max_chars=max_chars,
        max_html_chars=max_html_chars,
        on_display=on_display,
        recorder=recorder,
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
        names = visible_names(shell)
        if not names:
            return "No user variables yet."
        rows = [["name", "type", "shape/len", "size", "info"]]
        for name in names:
            value = shell.user_ns[name]
            size = nbytes(value)
            rows.append(
                [name, type_name(value), shape_text(value), human_size(size), variable_hint(value)]
            )
        header = f"{plural(len(names), 'variable')} in the user's namespace:\n"
        return clip_text(header + text_table(rows), max_chars)

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
            text += short_repr(value, 2000)
        return clip_text(f"{name}: {text}", max_chars)

    return [run_python, list_variables, inspect_variable]
