"""The notebook toolset: read, insert, edit, delete and run cells by id.

The tools work on whatever `get_document()` returns when they are called (the
live notebook through the labextension, or a file), so a notebook that is
renamed or reconnected is picked up on the next call.

Hash rule for edit_cell and delete_cell. The toolset remembers, per cell, the
hash of the source the agent last saw (from read_notebook, insert_cell,
edit_cell, or a conflict message that showed the current source). The change
is sent with that hash as its precondition, so if the user changed the cell
since, nothing is changed and the tool answers with the cell's current source
for the model to retry on. A cell the agent never saw (its id came from the
user or a cell's metadata, say) is changed against its current source: the
agent is acting on fresh information, and there is nothing older to protect.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from ..events import ToolOutput
from ..tools.base import Tool, ToolError, tool
from ..tools.clip import clip_text
from .document import (
    CELL_TYPES,
    CellInfo,
    NotebookConflict,
    NotebookDocument,
    check_cell_type,
    find_cell,
    source_hash,
)

RunResult = ToolOutput | tuple[ToolOutput, list[dict[str, Any]]]
"""What `run_code` returns: the model's view of the run, optionally with the exact
nbformat outputs to store in the cell (otherwise they are derived from the
ToolOutput: text as a stream, images as display_data, an error as an error)."""

NOT_ATTACHED = (
    "This kernel is not attached to a notebook (no notebook frontend with the nbagent "
    "extension is connected, and the kernel does not know its notebook file)."
)

_IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml", "image/webp")


class CellChangeRecorder(Protocol):
    """Where the notebook tools report cell edits, inserts and deletes, for review and
    undo (issue 12): `nbagent.undo.Recorder`."""

    def cell_will_change(self, doc: NotebookDocument, cell_id: str) -> Any:
        """Before an edit or delete: reads the cell's source and place; returns a token."""
        ...

    def cell_edited(self, token: Any, expected_hash: str, source: str) -> None: ...

    def cell_deleted(self, token: Any, expected_hash: str) -> None: ...

    def cell_inserted(
        self, doc: NotebookDocument, cell_id: str, source: str, cell_type: str = "code"
    ) -> None: ...


def notebook_tools(
    get_document: Callable[[], NotebookDocument | None],
    *,
    run_code: Callable[[str], RunResult] | None = None,
    max_chars: int = 20_000,
    recorder: CellChangeRecorder | None = None,
) -> list[Tool]:
    """read_notebook, insert_cell, edit_cell, delete_cell and (with `run_code`) run_cell.

    `get_document` is called on every tool call; returning None makes the tools
    answer that the kernel is not attached to a notebook. `run_code(source)` runs
    code in the live namespace (the python tool's runner) and returns its output.
    `max_chars` bounds read_notebook's answer. `recorder` is told about each cell
    change, with the source before (for `%agent changes` and `%agent undo`).
    """
    seen: dict[tuple[str, str], str] = {}  # (notebook path, cell id) -> hash the agent last saw
    per_output = max(500, max_chars // 10)

    def document() -> NotebookDocument:
        doc = get_document()
        if doc is None:
            raise ToolError(NOT_ATTACHED)
        return doc

    def expected_hash(doc: NotebookDocument, cell_id: str) -> str:
        known = seen.get((doc.path, cell_id))
        if known is not None:
            return known
        return find_cell(doc.read(), cell_id).hash

    def conflict(
        doc: NotebookDocument, cell_id: str, exc: NotebookConflict, verb: str
    ) -> ToolError:
        current = exc.current_source
        if current is None:
            try:
                current = find_cell(doc.read(), cell_id).source
            except ToolError:
                seen.pop((doc.path, cell_id), None)
                return NotebookConflict(
                    f"Cell '{cell_id}' no longer exists (it was deleted or the notebook was "
                    f"reloaded), so it was not {verb}. Call read_notebook to see the cells now.",
                    cell_id=cell_id,
                )
        # The model sees the current source in this message: that counts as reading it.
        seen[(doc.path, cell_id)] = source_hash(current)
        shown = clip_text(current, max_chars // 2) if current else "(empty)"
        return NotebookConflict(
            f"Cell '{cell_id}' was changed (by the user or another program) since you last "
            f"read it, so it was not {verb} and the notebook is unchanged. Its current "
            f"source is:\n{shown}\n\nIf your change still makes sense, call the tool again "
            "based on this source.",
            cell_id=cell_id,
            current_source=current,
        )

    @tool(read_only=True, category="read")
    def read_notebook() -> str:
        """Read the notebook this kernel is attached to: every cell with its id, type, source, execution count and outputs.

        Call it before changing cells: the other notebook tools address cells by the
        ids it shows. Long outputs are clipped; images are shown as [image/png].
        """
        doc = document()
        cells = doc.read()
        text, shown = _render(doc, cells, per_output, max_chars)
        for cell in shown:
            seen[(doc.path, cell.id)] = cell.hash
        return text

    @tool(category="write")
    def insert_cell(source: str, cell_type: str = "code", after_cell_id: str | None = None) -> str:
        """Insert a new cell into the notebook; it is not run.

        Returns the new cell's id (use it with run_cell, edit_cell or as after_cell_id).

        Args:
            source: The cell's content (code, Markdown or raw text).
            cell_type: One of "code", "markdown" or "raw".
            after_cell_id: Id of the cell to insert after; omit it to append at the end of the notebook.
        """
        check_cell_type(cell_type)
        doc = document()
        cell_id = doc.insert_cell(source, cell_type, after_cell_id)
        if recorder is not None:  # undo (issue 12)
            recorder.cell_inserted(doc, cell_id, source, cell_type)
        seen[(doc.path, cell_id)] = source_hash(source)
        where = f"after cell '{after_cell_id}'" if after_cell_id else "at the end of the notebook"
        return _with_notice(doc, f"Inserted {cell_type} cell '{cell_id}' {where}.")

    @tool(category="write")
    def edit_cell(cell_id: str, source: str) -> str:
        """Replace the whole source of a cell (it is not run; a code cell keeps its old outputs until run).

        If the user changed the cell since you read it, nothing is changed and the
        error shows its current source, so you can redo the edit on top of it.

        Args:
            cell_id: Id of the cell, as shown by read_notebook.
            source: The complete new source of the cell.
        """
        doc = document()
        expected = expected_hash(doc, cell_id)
        token = recorder.cell_will_change(doc, cell_id) if recorder is not None else None
        try:
            doc.edit_cell(cell_id, source, expected)
        except NotebookConflict as exc:
            raise conflict(doc, cell_id, exc, "edited") from None
        if recorder is not None:  # undo (issue 12)
            recorder.cell_edited(token, expected, source)
        seen[(doc.path, cell_id)] = source_hash(source)
        return _with_notice(doc, f"Edited cell '{cell_id}' ({_lines(source)}).")

    @tool(category="destructive")
    def delete_cell(cell_id: str) -> str:
        """Delete a cell from the notebook.

        If the user changed the cell since you read it, nothing is deleted and the
        error shows its current source.

        Args:
            cell_id: Id of the cell, as shown by read_notebook.
        """
        doc = document()
        expected = expected_hash(doc, cell_id)
        token = recorder.cell_will_change(doc, cell_id) if recorder is not None else None
        try:
            doc.delete_cell(cell_id, expected)
        except NotebookConflict as exc:
            raise conflict(doc, cell_id, exc, "deleted") from None
        if recorder is not None:  # undo (issue 12)
            recorder.cell_deleted(token, expected)
        seen.pop((doc.path, cell_id), None)
        return _with_notice(doc, f"Deleted cell '{cell_id}'.")

    tools = [read_notebook, insert_cell, edit_cell, delete_cell]
    if run_code is None:
        return tools

    runner = run_code

    @tool(category="execute", main_thread=True)
    def run_cell(cell_id: str) -> ToolOutput:
        """Run a code cell of the notebook in the kernel's live namespace and store its outputs in the cell.

        Returns what the code printed, displayed or raised (figures as images).

        Args:
            cell_id: Id of the code cell to run, as shown by read_notebook or insert_cell.
        """
        doc = document()
        cell = find_cell(doc.read(), cell_id)
        if cell.cell_type != "code":
            raise ToolError(
                f"Cell '{cell_id}' is a {cell.cell_type} cell; only code cells can be run."
            )
        output, outputs = _split_run_result(runner(cell.source))
        try:
            doc.set_outputs(cell_id, outputs, None)
        except ToolError as exc:
            note = f"(The code ran, but its outputs could not be stored in cell '{cell_id}': {exc})"
            output = _append_text(output, note)
        return output

    return [*tools, run_cell]


# -- rendering ---------------------------------------------------------------


def _render(
    doc: NotebookDocument, cells: list[CellInfo], per_output: int, max_chars: int
) -> tuple[str, list[CellInfo]]:
    """The model's view of the notebook, and the cells whose full source it shows."""
    head = [f"Notebook {doc.path}: {len(cells)} cell{'s' if len(cells) != 1 else ''}."]
    notice = getattr(doc, "read_notice", None)
    if notice:
        head.append(f"Warning: {notice}")
    if not cells:
        return "\n".join(head) + "\nThe notebook is empty.", []

    n = len(cells)
    for with_outputs in (True, False):
        blocks = [_render_cell(c, i, n, per_output, with_outputs) for i, c in enumerate(cells)]
        if sum(len(b) for b in blocks) + 200 <= max_chars or not with_outputs:
            break
    if not with_outputs:
        head.append("(Outputs are omitted: the notebook is too large to show them.)")

    out = "\n".join(head)
    shown: list[CellInfo] = []
    for i, (cell, block) in enumerate(zip(cells, blocks, strict=True)):
        if shown and len(out) + len(block) + 2 > max_chars:
            rest = ", ".join(c.id for c in cells[i:])
            out += (
                f"\n\n[... {n - i} more cell(s) not shown: the notebook is longer than "
                f"{max_chars:,} characters. Their ids: {clip_text(rest, 2000)}]"
            )
            break
        out += "\n\n" + block
        shown.append(cell)
    return out, shown


def _render_cell(cell: CellInfo, i: int, n: int, per_output: int, with_outputs: bool) -> str:
    header = f"=== cell {i + 1} of {n} | id: {cell.id} | {cell.cell_type}"
    if cell.cell_type == "code":
        count = cell.execution_count if cell.execution_count is not None else " "
        header += f" | [{count}]"
    parts = [header + " ===", cell.source if cell.source else "(empty)"]
    if cell.cell_type == "code" and cell.outputs:
        if with_outputs:
            texts = [t for t in (render_output(o, per_output) for o in cell.outputs) if t]
            if texts:
                parts.append("--- output ---")
                parts.extend(texts)
        else:
            parts.append(f"--- {len(cell.outputs)} output(s) not shown ---")
    return "\n".join(parts)


def render_output(output: dict[str, Any], limit: int = 2000) -> str:
    """One nbformat output as text for the model: text as text, images as `[image/png]`,
    errors as `ename: evalue`."""
    kind = output.get("output_type")
    if kind == "stream":
        text = _join(output.get("text", ""))
    elif kind == "error":
        text = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
    elif kind in ("execute_result", "display_data"):
        data = output.get("data") or {}
        pieces = []
        for mime in ("text/plain", "text/markdown", "text/latex"):
            if mime in data:
                pieces.append(_join(data[mime]))
                break
        else:
            if "text/html" in data:
                pieces.append(f"[text/html, {len(_join(data['text/html'])):,} characters]")
        for mime in data:
            if mime.startswith("image/"):
                pieces.append(f"[{mime}]")
            elif mime == "application/vnd.jupyter.widget-view+json":
                pieces.append("[widget]")
        if not pieces:
            pieces = [f"[{', '.join(data) or 'empty output'}]"]
        text = "\n".join(pieces)
    else:
        text = f"[{kind} output]"
    return clip_text(text.rstrip("\n"), limit)


def _join(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _with_notice(doc: Any, text: str) -> str:
    """`text`, plus what the write changed besides the cell (an old notebook saved as v4)."""
    pop = getattr(doc, "pop_notice", None)
    notice = pop() if pop is not None else None
    return f"{text}\n{notice}" if notice else text


def _lines(source: str) -> str:
    count = source.count("\n") + 1 if source else 0
    return f"{count} line{'s' if count != 1 else ''}"


# -- run_cell ------------------------------------------------------------------


def _split_run_result(result: Any) -> tuple[ToolOutput, list[dict[str, Any]]]:
    if isinstance(result, tuple):
        output, outputs = result
        return output, list(outputs)
    if not isinstance(result, ToolOutput):
        result = ToolOutput(str(result))
    return result, tool_output_to_nb_outputs(result)


_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*): ?(.*)$")


def tool_output_to_nb_outputs(output: ToolOutput) -> list[dict[str, Any]]:
    """nbformat outputs for a run that only returned a ToolOutput: text becomes a stdout
    stream (or, for an error result, an error output), image blocks become display_data."""
    blocks: list[dict[str, Any]] = (
        [{"type": "text", "text": output.content}]
        if isinstance(output.content, str)
        else output.content
    )
    outputs: list[dict[str, Any]] = []
    texts: list[str] = []

    def flush() -> None:
        text = "".join(texts)
        texts.clear()
        if not text or text == "(no output)":
            return
        if output.is_error:
            outputs.append(_error_output(text))
        else:
            outputs.append({"output_type": "stream", "name": "stdout", "text": text})

    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            text = block.get("text", "")
            if texts and text and not texts[-1].endswith("\n"):
                texts.append("\n")
            texts.append(text)
        elif kind == "image":
            flush()
            source = block.get("source") or {}
            if source.get("type") == "base64" and source.get("data"):
                mime = source.get("media_type") or "image/png"
                outputs.append(
                    {
                        "output_type": "display_data",
                        "data": {mime: source["data"], "text/plain": f"<{mime} image>"},
                        "metadata": {},
                    }
                )
    flush()
    return outputs


def _error_output(text: str) -> dict[str, Any]:
    lines = text.rstrip("\n").splitlines()
    last = next((ln for ln in reversed(lines) if ln.strip()), "Error")
    match = _ERROR_LINE.match(last.strip())
    ename, evalue = (match.group(1), match.group(2)) if match else ("Error", last.strip())
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": lines}


def _append_text(output: ToolOutput, note: str) -> ToolOutput:
    if isinstance(output.content, str):
        content: str | list[dict[str, Any]] = f"{output.content}\n\n{note}"
    else:
        content = [*output.content, {"type": "text", "text": note}]
    return ToolOutput(content, output.is_error, output.summary)


__all__ = [
    "CELL_TYPES",
    "NOT_ATTACHED",
    "RunResult",
    "notebook_tools",
    "render_output",
    "tool_output_to_nb_outputs",
]
