"""A notebook edited as an `.ipynb` file with nbformat.

Use it only for notebooks that are not open in a frontend (headless runs,
another notebook in the project), or read-only for a notebook that is open in
a frontend without the nbagent extension (`open_in_frontend=True`): writing
the file under an open editor loses someone's edits.

Every write re-reads the file, checks the hash precondition against what is on
disk now, validates the result with nbformat and replaces the file atomically.
If the file changed on disk while the write was being prepared, the operation
is redone on the new contents. A file that is not a readable notebook is
reported and never overwritten.
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import nbformat
from nbformat import v4

from ..tools.base import ToolError
from ..tools.workspace import atomic_write
from .document import CellInfo, NotebookConflict, check_cell_type, source_hash

T = TypeVar("T")

_CELL_ID = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")
_ATTEMPTS = 3  # how often a write is redone when the file changes under it


class FileNotebook:
    """An `.ipynb` file as a `NotebookDocument`.

    Notebooks written before nbformat 4.5 have no cell ids: they get ids
    derived from their position (`cell-0`, `cell-1`, ...) in memory, so they
    are stable across reads, and the first write saves them (as nbformat 4.5).
    """

    def __init__(self, path: str | os.PathLike[str], *, open_in_frontend: bool = False) -> None:
        self.path = os.fspath(path)
        self.open_in_frontend = open_in_frontend
        self.read_notice: str | None = (
            f"{self.path} is open in a frontend without the nbagent extension: this is the "
            "saved file, so unsaved edits in the editor are not visible, and the notebook "
            "tools cannot change it."
            if open_in_frontend
            else None
        )
        self._lock = _lock_for(self.path)

    def __repr__(self) -> str:
        extra = ", open_in_frontend=True" if self.open_in_frontend else ""
        return f"FileNotebook({self.path!r}{extra})"

    # -- reading ------------------------------------------------------------

    def read(self) -> list[CellInfo]:
        _, nb = self._load()
        return [_cell_info(cell) for cell in nb.cells]

    # -- writing ------------------------------------------------------------

    def insert_cell(
        self, source: str, cell_type: str = "code", after_cell_id: str | None = None
    ) -> str:
        """Insert a cell after `after_cell_id`, or at the end when it is None; return its id."""
        check_cell_type(cell_type)

        def change(nb: Any) -> str:
            make = {"code": v4.new_code_cell, "markdown": v4.new_markdown_cell}.get(
                cell_type, v4.new_raw_cell
            )
            cell = make(source)
            taken = {c.get("id") for c in nb.cells}
            while cell["id"] in taken:
                cell["id"] = v4.new_code_cell()["id"]
            if after_cell_id is None:
                index = len(nb.cells)
            else:
                index = _index(nb, after_cell_id) + 1
            nb.cells.insert(index, cell)
            return str(cell["id"])

        return self._modify(change)

    def edit_cell(self, cell_id: str, source: str, expected_hash: str) -> None:
        def change(nb: Any) -> None:
            cell = nb.cells[_index(nb, cell_id)]
            _check_hash(cell, cell_id, expected_hash)
            cell["source"] = source

        self._modify(change)

    def delete_cell(self, cell_id: str, expected_hash: str) -> None:
        def change(nb: Any) -> None:
            index = _index(nb, cell_id)
            _check_hash(nb.cells[index], cell_id, expected_hash)
            del nb.cells[index]

        self._modify(change)

    def set_outputs(
        self, cell_id: str, outputs: list[dict[str, Any]], execution_count: int | None
    ) -> None:
        def change(nb: Any) -> None:
            cell = nb.cells[_index(nb, cell_id)]
            if cell.get("cell_type") != "code":
                raise ToolError(
                    f"Cell '{cell_id}' is a {cell.get('cell_type')} cell; only code cells have outputs."
                )
            cell["outputs"] = [nbformat.from_dict(copy.deepcopy(o)) for o in outputs]
            cell["execution_count"] = execution_count

        self._modify(change)

    # -- internals ----------------------------------------------------------

    def _load(self) -> tuple[str, Any]:
        """The file's text and its notebook (nbformat v4, every cell with an id)."""
        try:
            text = Path(self.path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ToolError(f"Notebook {self.path} does not exist.") from None
        except UnicodeDecodeError as exc:
            raise ToolError(
                f"{self.path} is not a notebook: it is not UTF-8 text ({exc})."
            ) from None
        except OSError as exc:
            raise ToolError(
                f"Could not read notebook {self.path}: {exc.strerror or exc}."
            ) from None
        return text, self._parse(text)

    def _parse(self, text: str) -> Any:
        unchanged = "The file was left unchanged; fix it (or restore it from a checkpoint) first."
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ToolError(
                f"{self.path} is not a valid notebook: invalid JSON at line {exc.lineno}, "
                f"column {exc.colno} ({exc.msg}). {unchanged}"
            ) from None
        if not isinstance(data, dict) or "nbformat" not in data or "cells" not in data:
            raise ToolError(
                f"{self.path} is JSON but not a Jupyter notebook (no 'nbformat' and 'cells' "
                f"keys). {unchanged}"
            )
        try:
            nb = nbformat.reader.reads(text)
            nb = nbformat.convert(nb, 4)
            for cell in nb.cells:
                cell.setdefault("source", "")
                cell.setdefault("metadata", nbformat.NotebookNode())
        except Exception as exc:
            raise ToolError(f"{self.path} is not a readable notebook: {exc}. {unchanged}") from None
        _ensure_ids(nb)
        return nb

    def _modify(self, change: Callable[[Any], T]) -> T:
        """Apply `change` to the notebook on disk now and write the result atomically."""
        if self.open_in_frontend:
            raise ToolError(
                f"{self.path} is open in a frontend without the nbagent extension; refusing to "
                "write it on disk (unsaved edits would be lost). Install/enable the labextension, "
                "or work on a copy."
            )
        with self._lock:
            for _ in range(_ATTEMPTS):
                text, nb = self._load()
                result = change(nb)
                new_text = self._serialize(nb)
                # Narrow the window for a concurrent writer: if the file changed
                # while we prepared ours, redo the change (and its hash check) on it.
                try:
                    if Path(self.path).read_text(encoding="utf-8") != text:
                        continue
                except (OSError, UnicodeDecodeError):
                    continue
                try:
                    atomic_write(Path(self.path), new_text)
                except OSError as exc:
                    raise ToolError(
                        f"Could not write notebook {self.path}: {exc.strerror or exc}. "
                        "The file was left unchanged."
                    ) from None
                return result
        raise ToolError(f"{self.path} kept changing on disk while it was being edited; try again.")

    def _serialize(self, nb: Any) -> str:
        if nb.get("nbformat_minor", 0) < 5:
            nb["nbformat_minor"] = 5  # cell ids need nbformat 4.5
        try:
            nbformat.validate(nb)
        except nbformat.ValidationError as exc:
            message = getattr(exc, "message", None) or str(exc)
            where = "/".join(str(p) for p in getattr(exc, "absolute_path", ()) or ())
            if len(message) > 500:
                message = message[:500] + "..."
            raise ToolError(
                f"The change would make {self.path} an invalid notebook"
                f"{f' (at {where})' if where else ''}: {message}. The file was left unchanged."
            ) from None
        text = nbformat.writes(nb, version=nbformat.NO_CONVERT)
        return text if text.endswith("\n") else text + "\n"


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _lock_for(path: str) -> threading.Lock:
    """One lock per file, shared by every FileNotebook on it in this process."""
    key = os.path.realpath(path)
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(key, threading.Lock())


def _cell_info(cell: Any) -> CellInfo:
    return CellInfo(
        id=str(cell["id"]),
        cell_type=str(cell.get("cell_type", "code")),
        source=_text(cell.get("source", "")),
        execution_count=cell.get("execution_count") if cell.get("cell_type") == "code" else None,
        outputs=[_plain(o) for o in cell.get("outputs", [])]
        if cell.get("cell_type") == "code"
        else [],
    )


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _plain(value: Any) -> Any:
    """NotebookNodes as plain dicts and lists (so callers can't alias the file's state)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _ensure_ids(nb: Any) -> None:
    """Give cells without a valid, unique id one derived from their position."""
    valid: set[str] = set()
    needs: list[int] = []
    for i, cell in enumerate(nb.cells):
        cid = cell.get("id")
        if isinstance(cid, str) and _CELL_ID.match(cid) and cid not in valid:
            valid.add(cid)
        else:
            needs.append(i)
    for i in needs:
        cid = f"cell-{i}"
        n = 1
        while cid in valid:
            cid = f"cell-{i}-{n}"
            n += 1
        valid.add(cid)
        nb.cells[i]["id"] = cid


def _index(nb: Any, cell_id: str) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.get("id") == cell_id:
            return i
    raise ToolError(
        f"There is no cell with id '{cell_id}' in the notebook; "
        "call read_notebook to see the current cell ids."
    )


def _check_hash(cell: Any, cell_id: str, expected_hash: str) -> None:
    current = _text(cell.get("source", ""))
    if source_hash(current) != expected_hash:
        raise NotebookConflict(
            f"Cell '{cell_id}' has changed since it was read; nothing was changed.",
            cell_id=cell_id,
            current_source=current,
        )
