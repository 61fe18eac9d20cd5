"""A notebook edited as an `.ipynb` file with nbformat.

Use it only for notebooks that are not open in a frontend (headless runs,
another notebook in the project), or read-only for a notebook that is open in
a frontend without the nbagent extension (`open_in_frontend=True`): writing
the file under an open editor loses someone's edits.

Every write takes an inter-process lock (so two processes editing one file
never lose an edit), re-reads the file, checks the hash precondition against
what is on disk now, validates the result with nbformat and replaces the file
atomically. If the file changed on disk while the write was being prepared (a
writer that does not lock, such as a user's editor), the operation is redone on
the new contents. A file that is not a readable notebook is reported and never
overwritten. Notebooks in older formats (nbformat 3 and before) are converted
in memory and saved as nbformat 4, with a notice.

nbformat is imported when a notebook is first read, not with this module: it
costs most of a second, and this module is on the `%load_ext` path.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ..tools.base import ToolError
from ..tools.workspace import atomic_write
from .document import CellInfo, NotebookConflict, check_cell_type, source_hash

T = TypeVar("T")

_CELL_ID = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")
_ATTEMPTS = 3  # how often a write is redone when the file changes under it
LOCK_TIMEOUT = 30.0  # seconds to wait for another process's edit of the same file


class FileNotebook:
    """An `.ipynb` file as a `NotebookDocument`.

    Notebooks written before nbformat 4.5 have no cell ids: they get ids
    derived from their position (`cell-0`, `cell-1`, ...) in memory, so they
    are stable across reads, and the first write saves them (as nbformat 4.5).
    Notebooks older than nbformat 4 are converted the same way; `read_notice`
    says so, and `pop_notice()` says once that a write saved one as nbformat 4.
    """

    def __init__(self, path: str | os.PathLike[str], *, open_in_frontend: bool = False) -> None:
        self.path = os.fspath(path)
        self.open_in_frontend = open_in_frontend
        self._frontend_notice: str | None = (
            f"{self.path} is open in a frontend without the nbagent extension: this is the "
            "saved file, so unsaved edits in the editor are not visible, and the notebook "
            "tools cannot change it."
            if open_in_frontend
            else None
        )
        self._format: int = 4  # the nbformat major version of the file as last read
        self._saved_notice: str | None = None
        self._lock = _lock_for(self.path)

    @property
    def read_notice(self) -> str | None:
        """A warning to show with every read (open in a frontend; an older format)."""
        notices = [self._frontend_notice] if self._frontend_notice else []
        if self._format < 4:
            notices.append(
                f"{self.path} is in nbformat {self._format}, an older notebook format: it was "
                "converted to nbformat 4 to be read, and the first edit saves it as nbformat 4."
            )
        return " ".join(notices) or None

    def pop_notice(self) -> str | None:
        """What the last write did beyond the change asked for, once (e.g. a format upgrade)."""
        notice, self._saved_notice = self._saved_notice, None
        return notice

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
        return self._insert(source, cell_type, after_cell_id, first=False)

    def insert_first_cell(self, source: str, cell_type: str = "code") -> str:
        """Insert a cell at the top of the notebook; return its id."""
        return self._insert(source, cell_type, None, first=True)

    def _insert(
        self, source: str, cell_type: str, after_cell_id: str | None, *, first: bool
    ) -> str:
        check_cell_type(cell_type)

        def change(nb: Any) -> str:
            from nbformat import v4

            make = {"code": v4.new_code_cell, "markdown": v4.new_markdown_cell}.get(
                cell_type, v4.new_raw_cell
            )
            cell = make(source)
            taken = {c.get("id") for c in nb.cells}
            while cell["id"] in taken:
                cell["id"] = v4.new_code_cell()["id"]
            if first:
                index = 0
            elif after_cell_id is None:
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
            import nbformat

            cell["outputs"] = [nbformat.from_dict(copy.deepcopy(o)) for o in outputs]
            cell["execution_count"] = execution_count

        self._modify(change)

    # -- internals ----------------------------------------------------------

    def _load(self) -> tuple[str, Any]:
        """The file's text and its notebook (nbformat v4, every cell with an id)."""
        try:
            text = _read_regular(self.path).decode("utf-8")
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
        import nbformat

        unchanged = "The file was left unchanged; fix it (or restore it from a checkpoint) first."
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ToolError(
                f"{self.path} is not a valid notebook: invalid JSON at line {exc.lineno}, "
                f"column {exc.colno} ({exc.msg}). {unchanged}"
            ) from None
        # nbformat 3 and 2 keep their cells in "worksheets"; 1 and 4 in "cells".
        if (
            not isinstance(data, dict)
            or "nbformat" not in data
            or ("cells" not in data and "worksheets" not in data)
        ):
            raise ToolError(
                f"{self.path} is JSON but not a Jupyter notebook (no 'nbformat' and 'cells' "
                f"keys). {unchanged}"
            )
        try:
            nb = nbformat.reader.reads(text)
            major = int(nb.get("nbformat", 4))
            nb = nbformat.convert(nb, 4)
            for cell in nb.cells:
                cell.setdefault("source", "")
                cell.setdefault("metadata", nbformat.NotebookNode())
                if major < 4:
                    # The conversion makes up random ids; position ids stay stable across reads.
                    cell.pop("id", None)
        except Exception as exc:
            raise ToolError(f"{self.path} is not a readable notebook: {exc}. {unchanged}") from None
        self._format = major
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
        with self._lock, _interprocess_lock(self.path):
            for _ in range(_ATTEMPTS):
                # Read and check the hash under the lock: no other nbagent writer can
                # slip an edit in between, so none is lost.
                text, nb = self._load()
                original = self._format
                result = change(nb)
                new_text = self._serialize(nb)
                # A writer that does not lock (an editor) may still have saved while
                # we prepared ours: then redo the change (and its hash check) on that.
                try:
                    if _read_regular(self.path).decode("utf-8") != text:
                        continue
                except (OSError, UnicodeDecodeError):
                    continue
                try:
                    atomic_write(self.path, new_text)
                except OSError as exc:
                    raise ToolError(
                        f"Could not write notebook {self.path}: {exc.strerror or exc}. "
                        "The file was left unchanged."
                    ) from None
                if original < 4:
                    self._format = 4
                    self._saved_notice = (
                        f"{self.path} was in nbformat {original}; it has now been saved as "
                        "nbformat 4 (older Jupyter versions cannot open it any more)."
                    )
                return result
        raise ToolError(f"{self.path} kept changing on disk while it was being edited; try again.")

    def _serialize(self, nb: Any) -> str:
        import nbformat

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


def _read_regular(path: str) -> bytes:
    """The bytes of the regular file at `path`; a FIFO or device is refused, never opened."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the check
            raise OSError(errno.EINVAL, "not a regular file")
        with open(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def lock_path(path: str) -> str:
    """`.<name>.nbagent.lock` next to the notebook (the notebook's own inode is replaced
    by every atomic write, so it cannot carry the lock)."""
    directory, name = os.path.split(os.path.realpath(path))
    return os.path.join(directory, f".{name}.nbagent.lock")


@contextlib.contextmanager
def _interprocess_lock(path: str) -> Iterator[None]:
    """Hold an exclusive flock on the notebook's lock file; remove the file afterwards.

    Removing it is safe because a waiter that locked a file since unlinked (its
    inode no longer at the path) lets go and tries again.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: the in-process lock is all there is
        yield
        return
    target = lock_path(path)
    deadline = time.monotonic() + LOCK_TIMEOUT
    delay = 0.001
    while True:
        try:
            fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ToolError(
                f"Could not write notebook {path}: cannot create its lock file "
                f"({exc.strerror or exc}). The file was left unchanged."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() > deadline:
                raise ToolError(
                    f"{path} is being edited by another process (it holds {target}); "
                    "nothing was changed. Try again."
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
            continue
        try:
            current = os.stat(target, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
            break
        os.close(fd)  # the holder before us removed it: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(target)
        os.close(fd)


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
