"""Records what each turn changes: the `Recorder` and the hooks the tools call.

A `Recorder` lives as long as the kernel (or the session). `begin_turn()` opens a new
record; the notebook tools, the file tools and `run_python` call its hooks around
each change:

- notebook tools: `cell_will_change(doc, cell_id)` before `edit_cell` / `delete_cell`
  (it reads the cell's source and position), then `cell_edited(token, expected_hash,
  source)` or `cell_deleted(token, expected_hash)` once the change succeeded;
  `cell_inserted(doc, cell_id, source, cell_type)` after an insert;
- file tools: `file_will_change(path)` before a write or delete (it keeps the content
  there now), then `file_did_change(token)` after it succeeded;
- `run_python` (and `run_cell`): `python_will_run(code, user_ns, transform=..., hidden=...)`
  before the code runs, `python_did_run(token)` after it ran (also after an error).

Changes made by shell commands, or by Python code to files, are not recorded.
The records themselves are in `changes.py`; `changes_text()` and `undo()` are in
`revert.py` and exposed here.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Container
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..notebook.document import source_hash
from ..render.format import human_size
from . import snapshot as snap
from .changes import (
    ABSENT,
    STRONG_AFTER_MAX,
    CellChange,
    CellToken,
    FileChange,
    FileState,
    FileToken,
    PythonToken,
    TurnRecord,
    ValueRef,
    VariableChange,
)
from .file_snapshot import content_digest, read_state

if TYPE_CHECKING:
    from ..notebook.document import NotebookDocument
    from .revert import UndoReport

log = logging.getLogger("nbagent.undo")
F = TypeVar("F", bound=Callable[..., Any])

MB = 1024 * 1024
DEFAULT_SNAPSHOT_MB = 200.0
# All turns together keep at most this many turns' worth of snapshots; the oldest
# turns' old values are released first (their records stay, marked not restorable).
TOTAL_TURNS_OF_SNAPSHOTS = 4


def _hook(fallback: Callable[..., Any] | None = None) -> Callable[[F], F]:
    """A recording hook never fails the tool that calls it: an error is logged, and a
    `*_will_*` hook returns a token that marks the change as not restorable."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except Exception:
                log.exception("recording a change for undo failed")
                return fallback(*args, **kwargs) if fallback is not None else None

        return run  # type: ignore[return-value]

    return decorate


class Recorder:
    """Every turn's changes, for `%agent changes` and `%agent undo`."""

    def __init__(self, *, snapshot_mb: float = DEFAULT_SNAPSHOT_MB) -> None:
        self.snapshot_mb = snapshot_mb
        self.turns: list[TurnRecord] = []
        self._lock = threading.RLock()
        # A cell restored by undo comes back with a new id; older records follow it.
        self.cell_aliases: dict[tuple[str, str], str] = {}

    # -- turns ------------------------------------------------------------------

    def begin_turn(self, label: str = "", *, snapshot_mb: float | None = None) -> TurnRecord:
        """Open the record of a turn that starts now (`undo_snapshot_mb` from its settings)."""
        with self._lock:
            if snapshot_mb is not None:
                self.snapshot_mb = snapshot_mb
            turn = TurnRecord(
                number=len(self.turns) + 1,
                label=" ".join(label.split())[:80],
                limit=int(self.snapshot_mb * MB),
            )
            self.turns.append(turn)
            return turn

    @property
    def current(self) -> TurnRecord:
        with self._lock:
            if not self.turns:
                return self.begin_turn("(changes outside a turn)")
            return self.turns[-1]

    def last_changed_turn(self) -> TurnRecord | None:
        """The most recent turn with changes that was not undone."""
        with self._lock:
            for turn in reversed(self.turns):
                if not turn.undone and not turn.empty:
                    return turn
            return None

    # -- notebook hooks -------------------------------------------------------------

    @_hook(lambda self, doc, cell_id: CellToken(doc, "", cell_id, None, "code", None, _FAILED))
    def cell_will_change(self, doc: NotebookDocument, cell_id: str) -> CellToken:
        """Call before `doc.edit_cell` / `doc.delete_cell`: reads the cell and its place."""
        try:
            cells = doc.read()
        except Exception as exc:
            return CellToken(
                doc, doc.path, cell_id, None, "code", None, f"it could not be read ({exc})"
            )
        for i, cell in enumerate(cells):
            if cell.id == cell_id:
                previous = cells[i - 1].id if i > 0 else None
                return CellToken(doc, doc.path, cell_id, cell.source, cell.cell_type, previous)
        return CellToken(doc, doc.path, cell_id, None, "code", None, "it was not found")

    @_hook()
    def cell_edited(self, token: CellToken, expected_hash: str, source: str) -> None:
        """Call after `doc.edit_cell(cell_id, source, expected_hash)` succeeded."""
        self._cell_change("edit", token, expected_hash, source)

    @_hook()
    def cell_deleted(self, token: CellToken, expected_hash: str) -> None:
        """Call after `doc.delete_cell(cell_id, expected_hash)` succeeded."""
        self._cell_change("delete", token, expected_hash, None)

    @_hook()
    def cell_inserted(
        self, doc: NotebookDocument, cell_id: str, source: str, cell_type: str = "code"
    ) -> None:
        """Call after `doc.insert_cell(...)` returned `cell_id`."""
        change = CellChange("insert", doc, doc.path, cell_id, cell_type, None, source)
        with self._lock:
            self.current.cells.append(change)

    def _cell_change(
        self,
        kind: Literal["edit", "delete"],
        token: CellToken,
        expected_hash: str,
        after: str | None,
    ) -> None:
        problem = token.problem
        before = token.source
        if problem is None and (before is None or source_hash(before) != expected_hash):
            # The hash check passed on a source other than the one read just before.
            problem = "it changed while the agent was editing it"
        change = CellChange(
            kind,
            token.doc,
            token.path,
            token.cell_id,
            token.cell_type,
            before if problem is None else None,
            after,
            token.after_cell_id,
            f"the source before is unknown: {problem}" if problem else None,
        )
        with self._lock:
            self.current.cells.append(change)

    # -- file hooks -------------------------------------------------------------------

    @_hook(
        lambda self, path, display=None, **_: FileToken(
            os.fspath(path), display or os.fspath(path), FileState("absent"), _FAILED
        )
    )
    def file_will_change(
        self, path: str | os.PathLike[str], display: str | None = None, *, tree: bool = True
    ) -> FileToken:
        """Call before a file tool writes, creates or deletes `path` (absolute): keeps what
        is there now (for a directory, its whole tree unless `tree` is False, as for
        create_directory) within the turn's limit. `display`: the path as the model gave it."""
        path = os.fspath(path)
        with self._lock:
            turn = self.current
            room = max(turn.limit - turn.used, 0)
        if path in turn.files:  # the turn already holds what was there before it
            return FileToken(path, display or path, turn.files[path].before)
        state, problem = read_state(path, room, turn.limit, keep_tree=tree)
        return FileToken(path, display or path, state, problem)

    @_hook()
    def file_did_change(self, token: FileToken, after: bytes | None = None) -> None:
        """Call after the change succeeded. `after`: the bytes written, if known (else
        the path is read again)."""
        if after is not None:
            now = FileState("file", data=after, digest=content_digest(after))
        else:
            now, _ = read_state(token.path, STRONG_AFTER_MAX, 0, keep_tree=False)
        with self._lock:
            turn = self.current
            existing = turn.files.get(token.path)
            if existing is not None:
                existing.after = now
                if existing.before.same_as(now) and existing.problem is None:
                    del turn.files[token.path]  # e.g. created, then deleted
                return
            if token.before.same_as(now):
                return  # the same content (or directory) as before: nothing to undo
            turn.files[token.path] = FileChange(
                token.path, token.display, token.before, now, token.problem
            )
            self._release_old()

    # -- python hooks --------------------------------------------------------------------

    @_hook(
        lambda self, code, namespace, **_: PythonToken(
            namespace, {}, None, {}, {}, {}, (), self.current, failed=True
        )
    )
    def python_will_run(
        self,
        code: str,
        namespace: dict[str, Any],
        *,
        transform: Callable[[str], str] | None = None,
        hidden: Container[str] = (),
    ) -> PythonToken:
        """Call just before `code` runs in `namespace` (the user's namespace)."""
        with self._lock:
            turn = self.current
            room = max(turn.limit - turn.used, 0)
        names = snap.code_names(code, transform)
        refs = {k: v for k, v in namespace.items() if snap.tracked(k, hidden)}
        copies: dict[str, tuple[Any, int]] = {}
        fingerprints: dict[str, bytes] = {}
        uncopied: dict[str, str] = {}
        for name in sorted(names.loaded) if names is not None else []:
            if name not in refs or name in turn.variables:
                continue
            value = refs[name]
            if snap.needs_no_copy(value):
                continue
            refusal = snap.copy_refusal(value)
            size = snap.size_of(value)
            if refusal is None and size > room:
                refusal = snap.too_large(size, turn.limit)
            if refusal is not None:
                uncopied[name] = refusal
                digest = snap.fingerprint(value)
                if digest is not None:
                    fingerprints[name] = digest
                continue
            try:
                copies[name] = (snap.make_copy(value), size)
                room -= size
            except Exception as exc:
                uncopied[name] = f"copying it failed ({type(exc).__name__})"
        return PythonToken(namespace, refs, names, copies, fingerprints, uncopied, hidden, turn)

    @_hook()
    def python_did_run(self, token: PythonToken) -> None:
        """Call after the code ran (whether or not it raised)."""
        if token.failed:
            return
        ns = token.namespace
        turn = token.turn
        with self._lock:
            names = set(token.refs) | {k for k in ns if snap.tracked(k, token.hidden)}
            added: list[VariableChange] = []
            for name in sorted(names):
                change = self._variable_change(token, name, ns.get(name, ABSENT))
                if change is not None:
                    added.append(change)
            for change in added:
                turn.variables[change.name] = change
            self._enforce_limit(turn, added)
            self._release_old()

    def _variable_change(self, token: PythonToken, name: str, now: Any) -> VariableChange | None:
        turn = token.turn
        before = token.refs.get(name, ABSENT)
        existing = turn.variables.get(name)
        if existing is not None:  # the turn already holds this name's value from before it
            if now is not before:
                existing.after = ValueRef(now)
                existing.after_desc = _describe(now)
                if existing.created and now is ABSENT:
                    del turn.variables[name]  # created, then deleted
            return None
        if before is ABSENT and now is ABSENT:
            return None
        if before is ABSENT:
            return VariableChange(
                name,
                token.namespace,
                ABSENT,
                "(not defined)",
                ValueRef(now),
                _describe(now),
                created=True,
            )
        copied = token.copies.get(name)
        if now is not before:  # rebound or deleted: the old object itself is put back
            value, mutated = before, False
            if copied is not None and snap.differs(copied[0], before):
                value, mutated = copied[0], True  # changed in place before being rebound
            return VariableChange(
                name,
                token.namespace,
                value,
                _describe(value),
                ValueRef(now),
                _describe(now),
                mutated=mutated,
                original=ValueRef(before) if mutated else None,
                size=snap.size_of(value),
            )
        # The same object: did the code change it in place?
        if copied is not None:
            if not snap.differs(copied[0], now):
                return None
            return VariableChange(
                name,
                token.namespace,
                copied[0],
                _describe(copied[0]),
                ValueRef(now),
                _describe(now),
                mutated=True,
                original=ValueRef(now),
                size=copied[1],
            )
        reason = token.uncopied.get(name)
        if reason is None:
            return None
        digest = token.fingerprints.get(name)
        if digest is not None:
            if snap.fingerprint(now) == digest:
                return None
            what = "it was changed in place, and " + reason
        elif token.names is not None and name in token.names.changed_in_place:
            what = "it may have been changed in place, and " + reason
        else:
            return None
        return VariableChange(
            name,
            token.namespace,
            ABSENT,
            _describe(now),
            ValueRef(now),
            _describe(now),
            mutated=True,
            problem=what,
        )

    def _enforce_limit(self, turn: TurnRecord, added: list[VariableChange]) -> None:
        """Old values the snapshot alone keeps alive count against the limit: drop the
        largest new ones until the turn fits, and say why they cannot be restored."""
        for change in sorted(added, key=lambda c: c.size, reverse=True):
            if turn.used <= turn.limit:
                return
            if change.size == 0:
                continue
            size, change.size = change.size, 0
            change.before = ABSENT
            change.problem = (
                f"keeping its old value would hold {human_size(size)} in memory, beyond the "
                f"undo_snapshot_mb limit of {human_size(turn.limit)}"
            )

    def _release_old(self) -> None:
        """Keep all turns' snapshots within TOTAL_TURNS_OF_SNAPSHOTS times the limit,
        releasing the oldest turns' first: records last for the kernel's lifetime, and
        so would the old values they hold."""
        total_limit = TOTAL_TURNS_OF_SNAPSHOTS * int(self.snapshot_mb * MB)
        live = [t for t in self.turns if not t.undone]
        total = sum(t.used for t in live)
        reason = (
            "its old value was released to keep the undo snapshots of all turns within "
            f"{human_size(total_limit)} ({TOTAL_TURNS_OF_SNAPSHOTS} x undo_snapshot_mb; "
            "older turns go first)"
        )
        for turn in live[:-1]:
            if total <= total_limit:
                return
            total -= turn.used
            release(turn, reason)
            total += turn.used

    # -- review ---------------------------------------------------------------------------

    def turn_summaries(self) -> list[dict[str, Any]]:
        """Each turn with changes, newest first, for the sidebar: number, label, counts,
        whether it was undone, and its diff text."""
        with self._lock:
            out = []
            for turn in reversed(self.turns):
                if turn.empty:
                    continue
                out.append(
                    {
                        "turn": turn.number,
                        "label": turn.label,
                        "cells": len({(c.path, c.cell_id) for c in turn.cells}),
                        "files": len(turn.files),
                        "variables": len(turn.variables),
                        "undone": turn.undone,
                        "diff": "" if turn.undone else self.changes_text(turn),
                    }
                )
            return out

    def undo_through(
        self,
        number: int,
        *,
        resolve_document: Callable[[str], NotebookDocument | None] | None = None,
    ) -> list[UndoReport]:
        """Undo turns, newest first, until turn `number` is undone (a sidebar's Revert
        on an older turn reverts the turns after it too)."""
        reports: list[UndoReport] = []
        with self._lock:
            while True:
                turn = self.last_changed_turn()
                if turn is None or turn.number < number:
                    return reports
                reports.append(self.undo(resolve_document=resolve_document))

    def changes_text(self, turn: TurnRecord | None = None) -> str:
        """The last turn's changes (or `turn`'s) as a diff, for `%agent changes`."""
        from .revert import changes_text

        with self._lock:
            return changes_text(turn or self.last_changed_turn())

    def undo(
        self, *, resolve_document: Callable[[str], NotebookDocument | None] | None = None
    ) -> UndoReport:
        """Revert the most recent turn not yet undone; a second call goes one turn back.

        `resolve_document(path)` gives the notebook document to restore cells through
        (default: the one the change was made through)."""
        from .revert import undo_turn

        with self._lock:
            return undo_turn(self, self.last_changed_turn(), resolve_document)


# -- helpers ------------------------------------------------------------------------------


_FAILED = "recording it failed (an nbagent bug; see the log)"


def release(turn: TurnRecord, reason: str | None) -> None:
    """Drop the old values and contents a turn holds; with a reason, they are reported
    as not restorable (an undone turn needs them no more: no reason)."""
    for v in turn.variables.values():
        if v.size or (reason is None and not v.created):
            v.before, v.size = ABSENT, 0
            if reason is not None and v.problem is None:
                v.problem = reason
    for f in turn.files.values():
        if f.before.data is not None or f.before.tree is not None:
            f.before.data = None
            f.before.tree = None
            if reason is not None and f.problem is None:
                f.problem = reason


def location_path(root: str | os.PathLike[str], loc: Any) -> str:
    """The absolute path of a workspace `Location` (what the file tools hold inside
    `ws.locate(...)`): its parts from the workspace root, or from "/" when outside."""
    if loc.absolute:
        return os.path.join("/", *loc.parts)
    return os.path.join(os.fspath(root), *loc.parts)


def _describe(value: Any) -> str:
    return "(not defined)" if value is ABSENT else snap.describe(value)
