"""What the notebook tools need from a notebook, whichever way it is reached.

Two backends implement `NotebookDocument`: `LiveNotebook` (the open notebook,
edited by the labextension through the kernel bridge) and `FileNotebook` (an
`.ipynb` file that is not open anywhere, edited with nbformat). Cells are
addressed by their nbformat cell id. Edits and deletions carry the SHA-256 of
the source the agent last saw (`source_hash`); if the cell has changed since,
the backend changes nothing and raises `NotebookConflict`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ..tools.base import ToolError

CellType = Literal["code", "markdown", "raw"]
CELL_TYPES: tuple[str, ...] = ("code", "markdown", "raw")


@dataclass
class CellInfo:
    """One cell as read from a notebook (`outputs` are nbformat output dicts)."""

    id: str
    cell_type: str
    source: str
    execution_count: int | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def hash(self) -> str:
        return source_hash(self.source)


def source_hash(source: str) -> str:
    """SHA-256 hex digest of a cell source encoded as UTF-8 (the protocol's `expected_hash`)."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


class NotebookConflict(ToolError):
    """The cell changed since the agent read it (or disappeared); nothing was changed.

    `current_source` is the cell's source now, when the backend knows it
    (None if the cell no longer exists or the frontend did not say).
    """

    def __init__(
        self, message: str, *, cell_id: str | None = None, current_source: str | None = None
    ) -> None:
        super().__init__(message)
        self.cell_id = cell_id
        self.current_source = current_source


@runtime_checkable
class NotebookDocument(Protocol):
    """A notebook the agent reads and edits, cell by cell.

    Implementations may also have a `read_notice: str | None` attribute: a
    warning shown with every read (e.g. "unsaved edits are not visible").
    """

    path: str

    def read(self) -> list[CellInfo]:
        """All cells, in order."""
        ...

    def insert_cell(
        self, source: str, cell_type: str = "code", after_cell_id: str | None = None
    ) -> str:
        """Insert a cell after `after_cell_id`, or at the END when it is None; return its id."""
        ...

    def insert_first_cell(self, source: str, cell_type: str = "code") -> str:
        """Insert a cell at the top of the notebook; return its id (undo puts a deleted
        first cell back there)."""
        ...

    def edit_cell(self, cell_id: str, source: str, expected_hash: str) -> None:
        """Replace a cell's source if its current source hashes to `expected_hash`,
        else raise NotebookConflict. A code cell keeps its outputs."""
        ...

    def delete_cell(self, cell_id: str, expected_hash: str) -> None:
        """Delete a cell if its current source hashes to `expected_hash`, else raise
        NotebookConflict."""
        ...

    def set_outputs(
        self, cell_id: str, outputs: list[dict[str, Any]], execution_count: int | None
    ) -> None:
        """Replace a code cell's outputs (nbformat output dicts) and execution count."""
        ...


def find_cell(cells: list[CellInfo], cell_id: str) -> CellInfo:
    """The cell with `cell_id`, or a ToolError that tells the model how to recover."""
    for cell in cells:
        if cell.id == cell_id:
            return cell
    raise ToolError(
        f"There is no cell with id '{cell_id}' in the notebook; "
        "call read_notebook to see the current cell ids."
    )


def check_cell_type(cell_type: str) -> None:
    if cell_type not in CELL_TYPES:
        raise ToolError(f"cell_type must be one of code, markdown, raw (got {cell_type!r}).")
