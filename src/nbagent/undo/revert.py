"""Undo a turn's changes, and show them as a diff.

Cells are put back through the notebook document API with the same hash check as the
agent's own edits: a cell the user changed after the turn is left as the user left it
(and reported), and cells the turn did not touch are never written, so the user's
edits elsewhere survive. Files are restored only if they still hold what the turn left
there; variables only if the name still holds the value the turn left.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..notebook.document import NotebookConflict, source_hash
from ..redact import redact
from ..tools.base import ToolError
from ..tools.clip import clip_text
from ..tools.workspace import atomic_write
from .changes import ABSENT, FileChange, FileState, TurnRecord, ValueRef
from .file_snapshot import read_state
from .records import release

if TYPE_CHECKING:
    from ..notebook.document import NotebookDocument
    from .records import Recorder

MAX_DIFF_LINES = 80
MAX_TEXT = 20_000


@dataclass
class UndoReport:
    """What an undo restored and what it could not (with the reason)."""

    turn: int | None
    label: str = ""
    restored: list[str] = field(default_factory=list)
    not_restored: list[str] = field(default_factory=list)

    @property
    def nothing_to_undo(self) -> bool:
        return self.turn is None

    def text(self) -> str:
        """For the user (`%agent undo`)."""
        if self.turn is None:
            return "Nothing to undo: no turn left changes to cells, files or variables."
        lines = [f"Undid turn {self.turn}{_label(self.label)}:"]
        lines += [f"  restored: {r}" for r in self.restored]
        lines += [f"  NOT restored: {r}" for r in self.not_restored]
        if not self.restored and not self.not_restored:
            lines.append("  (nothing to restore)")
        return redact("\n".join(lines))

    def note(self) -> str:
        """For the conversation, so the model knows what was reverted."""
        if self.turn is None:
            return ""
        parts = [
            f"[The user undid the changes of turn {self.turn}{_label(self.label)}: cells, files "
            "and variables are back to how they were before it, except as listed.]"
        ]
        if self.restored:
            parts.append("Restored: " + "; ".join(self.restored) + ".")
        if self.not_restored:
            parts.append("Not restored: " + "; ".join(self.not_restored) + ".")
        return redact(" ".join(parts))


# -- cells: the net change of each cell over the turn --------------------------------------


@dataclass
class _NetCell:
    doc: Any
    path: str
    cell_id: str
    cell_type: str
    existed: bool  # the cell was there before the turn
    original: str | None  # its source before the turn
    final: str | None  # its source after the turn (None: deleted)
    after_cell_id: str | None = None
    deleted_order: int = -1
    problem: str | None = None


def _net_cells(turn: TurnRecord) -> list[_NetCell]:
    net: dict[tuple[str, str], _NetCell] = {}
    for i, change in enumerate(turn.cells):
        key = (change.path, change.cell_id)
        cell = net.get(key)
        if cell is None:
            cell = net[key] = _NetCell(
                doc=change.doc,
                path=change.path,
                cell_id=change.cell_id,
                cell_type=change.cell_type,
                existed=change.kind != "insert",
                original=change.before,
                final=change.after,
                problem=change.problem,
            )
        cell.final = change.after
        cell.doc = change.doc
        if change.kind == "delete":
            cell.after_cell_id = change.after_cell_id
            cell.deleted_order = i
    return [c for c in net.values() if not (c.existed is False and c.final is None)]


def _undo_cells(
    recorder: Recorder,
    turn: TurnRecord,
    resolve: Callable[[str], NotebookDocument | None] | None,
    report: UndoReport,
) -> None:
    cells = _net_cells(turn)

    def alias(path: str, cell_id: str | None) -> str | None:
        seen = set()
        while cell_id is not None and (path, cell_id) in recorder.cell_aliases:
            if cell_id in seen:
                break
            seen.add(cell_id)
            cell_id = recorder.cell_aliases[(path, cell_id)]
        return cell_id

    def document(cell: _NetCell) -> Any:
        doc = resolve(cell.path) if resolve is not None else None
        return doc if doc is not None else cell.doc

    def attempt(cell: _NetCell, action: Callable[[], str]) -> None:
        where = f"cell '{cell.cell_id}'"
        if cell.problem:
            report.not_restored.append(f"{where}: {cell.problem}")
            return
        try:
            report.restored.append(action())
        except NotebookConflict:
            report.not_restored.append(
                f"{where}: it was changed after the turn, so your version was kept"
            )
        except ToolError as exc:
            report.not_restored.append(f"{where}: {exc}")

    # 1. Cells that existed and were edited get their source back.
    for cell in cells:
        if cell.existed and cell.final is not None and cell.final != cell.original:
            cell_id = alias(cell.path, cell.cell_id) or cell.cell_id

            def edit(cell: _NetCell = cell, cell_id: str = cell_id) -> str:
                document(cell).edit_cell(
                    cell_id, cell.original or "", source_hash(cell.final or "")
                )
                return f"cell '{cell_id}': its source before the turn"

            attempt(cell, edit)
    # 2. Deleted cells come back where they were, last deleted first (so a run of
    #    deleted neighbours lands in order). The document API inserts after a cell.
    deleted = [c for c in cells if c.existed and c.final is None]
    for cell in sorted(deleted, key=lambda c: c.deleted_order, reverse=True):

        def reinsert(cell: _NetCell = cell) -> str:
            doc = document(cell)
            after = alias(cell.path, cell.after_cell_id)
            where = ""
            try:
                if after is None:  # it was the first cell: back at the top
                    new_id = doc.insert_first_cell(cell.original or "", cell.cell_type)
                else:
                    new_id = doc.insert_cell(cell.original or "", cell.cell_type, after)
            except ToolError:  # its neighbour is gone: append it instead
                new_id = doc.insert_cell(cell.original or "", cell.cell_type, None)
                where = " (at the end: the cell it followed is gone)"
            recorder.cell_aliases[(cell.path, cell.cell_id)] = new_id
            return f"deleted cell '{cell.cell_id}' is back as cell '{new_id}'{where}"

        attempt(cell, reinsert)
    # 3. Cells the turn inserted are removed (after the re-inserts, which may follow them).
    for cell in cells:
        if not cell.existed and cell.final is not None:
            cell_id = alias(cell.path, cell.cell_id) or cell.cell_id

            def remove(cell: _NetCell = cell, cell_id: str = cell_id) -> str:
                document(cell).delete_cell(cell_id, source_hash(cell.final or ""))
                return f"cell '{cell_id}', which the turn inserted, was removed"

            attempt(cell, remove)


# -- files ----------------------------------------------------------------------------------


def _undo_files(turn: TurnRecord, report: UndoReport) -> None:
    for change in reversed(list(turn.files.values())):
        where = change.display
        if change.problem:
            report.not_restored.append(f"{where}: {change.problem}")
            continue
        now, _ = read_state(change.path, 0, 0, keep_tree=False)
        if not now.same_as(change.after):
            report.not_restored.append(
                f"{where}: it was changed after the turn, so it was left as it is"
            )
            continue
        try:
            report.restored.append(_restore_path(change))
        except OSError as exc:
            report.not_restored.append(f"{where}: {exc.strerror or exc}")


def _restore_path(change: FileChange) -> str:
    path, before, where = change.path, change.before, change.display
    if before.kind == "absent":
        if change.after.kind == "dir":
            os.rmdir(path)  # only when empty: files put there since are the user's
            return f"{where}: the directory the turn created was removed"
        os.unlink(path)
        return f"{where}: the file the turn created was removed"
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if before.kind == "file":
        if change.after.kind == "link":
            os.unlink(path)
        atomic_write(path, before.data or b"")
        if before.mode is not None:
            os.chmod(path, before.mode)
        return (
            f"{where}: its content before the turn"
            if change.after.kind != "absent"
            else (f"{where}: the deleted file is back")
        )
    if before.kind == "link":
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(before.target or "", path)
        return f"{where}: the symlink is back"
    _restore_tree(path, before)
    return f"{where}: the deleted directory is back"


def _restore_tree(path: str, before: FileState) -> None:
    if before.tree is None:
        raise OSError(0, "its contents were not kept")
    os.makedirs(path, exist_ok=True)
    for entry in before.tree:
        target = os.path.join(path, entry.rel)
        if entry.kind == "dir":
            os.makedirs(target, exist_ok=True)
        elif entry.kind == "link":
            os.symlink(entry.target or "", target)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            atomic_write(target, entry.data or b"")
        if entry.mode is not None and entry.kind != "link":
            os.chmod(target, entry.mode)
    if before.mode is not None:
        os.chmod(path, before.mode)


# -- variables --------------------------------------------------------------------------------


def _undo_variables(recorder: Recorder, turn: TurnRecord, report: UndoReport) -> None:
    for change in reversed(list(turn.variables.values())):
        name, ns = change.name, change.namespace
        if change.problem:
            report.not_restored.append(f"variable {name}: {change.problem}")
            continue
        if not change.after.in_namespace(ns, name):
            report.not_restored.append(
                f"variable {name}: it was changed after the turn, so it was left as it is"
            )
            continue
        if change.created:
            ns.pop(name, None)
            report.restored.append(f"variable {name}: removed (the turn created it)")
            continue
        if change.original is not None:
            # An older turn that left `name` as the object now replaced by its copy
            # must recognise the copy when it is undone in turn (done while the
            # object is still alive, so its weak reference still resolves).
            _follow(recorder, turn, name, ns, change.original, change.before)
        ns[name] = change.before
        report.restored.append(f"variable {name}: {change.before_desc} again")


def _follow(
    recorder: Recorder,
    turn: TurnRecord,
    name: str,
    ns: dict[str, Any],
    original: ValueRef,
    replacement: Any,
) -> None:
    for older in recorder.turns:
        if older is turn:
            break
        change = older.variables.get(name)
        if change is not None and change.namespace is ns and original.same_target(change.after):
            change.after = ValueRef(replacement)


def undo_turn(
    recorder: Recorder,
    turn: TurnRecord | None,
    resolve: Callable[[str], NotebookDocument | None] | None,
) -> UndoReport:
    if turn is None:
        return UndoReport(None)
    report = UndoReport(turn.number, turn.label)
    _undo_cells(recorder, turn, resolve, report)
    _undo_files(turn, report)
    _undo_variables(recorder, turn, report)
    turn.undone = True
    release(turn, None)  # what it kept is back in place, or could not be put back
    return report


# -- the diff ---------------------------------------------------------------------------------


def changes_text(turn: TurnRecord | None) -> str:
    """A turn's changes: cell and file diffs, variables before and after."""
    if turn is None:
        return "No changes to show: no turn has changed cells, files or variables (or all were undone)."
    out = [f"Turn {turn.number}{_label(turn.label)}:"]
    cells = _net_cells(turn)
    if cells:
        out.append("")
        out.append("Cells:")
        for cell in cells:
            out += _cell_text(cell)
    if turn.files:
        out.append("")
        out.append("Files:")
        for change in turn.files.values():
            out += _file_text(change)
    if turn.variables:
        out.append("")
        out.append("Variables:")
        for v in turn.variables.values():
            line = f"  {v.name}: {v.kind}"
            if v.kind == "created":
                line += f" ({v.after_desc})"
            elif v.kind == "deleted":
                line += f" (was {v.before_desc})"
            else:
                line += f" ({v.before_desc} -> {v.after_desc})"
            if v.problem:
                line += f"; cannot be undone: {v.problem}"
            out.append(line)
    out.append("")
    out.append("Revert with %agent undo.")
    return redact(clip_text("\n".join(out), MAX_TEXT))


def _cell_text(cell: _NetCell) -> list[str]:
    head = f"  cell '{cell.cell_id}' ({cell.cell_type}) in {cell.path}"
    if not cell.existed:
        return [f"{head}: inserted", *_diff("", cell.final or "", cell.cell_id)]
    if cell.final is None:
        lines = [f"{head}: deleted"]
        if cell.original is None:
            return [*lines, f"    (its source is unknown: {cell.problem})"]
        return lines + _diff(cell.original, "", cell.cell_id)
    if cell.original is None:
        return [f"{head}: edited (its source before is unknown: {cell.problem})"]
    return [f"{head}: edited", *_diff(cell.original, cell.final, cell.cell_id)]


def _file_text(change: FileChange) -> list[str]:
    before, after = change.before, change.after
    kind = change.kind
    if "dir" in (before.kind, after.kind):
        what = "directory"
        extra = (
            f" ({sum(1 for e in before.tree or [] if e.kind == 'file')} files)"
            if kind == "deleted"
            else ""
        )
        return [f"  {change.display}: {what} {kind}{extra}"]
    head = f"  {change.display}: {kind}"
    if change.problem:
        return [f"{head} (cannot be undone: {change.problem})"]
    old, new = _text(before), _text(after)
    if old is None or new is None:
        return [f"{head} (binary or large content, not shown)"]
    return [head, *_diff(old, new, change.display)]


def _text(state: FileState) -> str | None:
    if state.kind == "absent":
        return ""
    if state.data is None:
        return None
    try:
        return state.data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _diff(before: str, after: str, name: str) -> list[str]:
    lines = list(
        difflib.unified_diff(
            before.splitlines(),
            after.splitlines(),
            fromfile=f"{name} (before)",
            tofile=f"{name} (after)",
            lineterm="",
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"... ({len(lines) - MAX_DIFF_LINES} more diff lines)"]
    return ["    " + line for line in lines]


def _label(label: str) -> str:
    return f" ({label!r})" if label else ""


__all__ = ["ABSENT", "UndoReport", "changes_text", "undo_turn"]
