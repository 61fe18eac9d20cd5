"""The notebook open in JupyterLab, edited by the nbagent labextension.

Each operation is a protocol `request` (docs/protocol.md) sent through the
kernel bridge to one frontend client, which applies it to the notebook's
shared model (so the user's unsaved edits elsewhere survive) and replies. The
calling thread blocks until the reply arrives; on ipykernel 7 the reply
reaches the busy kernel on the client's subshell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..tools.base import ToolError
from .document import CellInfo, NotebookConflict, check_cell_type

if TYPE_CHECKING:
    from ..transport.bridge import Bridge


class LiveNotebook:
    """A `NotebookDocument` backed by a labextension client."""

    read_notice: str | None = None

    def __init__(self, bridge: Bridge, client_id: str, path: str, *, timeout: float = 10.0) -> None:
        self.bridge = bridge
        self.client_id = client_id
        self.path = path
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"LiveNotebook({self.path!r}, client_id={self.client_id!r})"

    def _call(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        from ..transport.bridge import FrontendError

        try:
            return self.bridge.request(op, args, client_id=self.client_id, timeout=self.timeout)
        except FrontendError as exc:
            if exc.code == "conflict":
                current = exc.reply.get("current_source")
                raise NotebookConflict(
                    str(exc) or "The cell changed since it was read; nothing was changed.",
                    cell_id=args.get("cell_id"),
                    current_source=current if isinstance(current, str) else None,
                ) from None
            raise

    def read(self) -> list[CellInfo]:
        result = self._call("read_notebook", {})
        path = result.get("path")
        if isinstance(path, str) and path:
            self.path = path
        cells = result.get("cells")
        if not isinstance(cells, list):
            raise ToolError(
                "The notebook frontend sent a malformed read_notebook reply (no cells)."
            )
        return [_cell_info(c) for c in cells if isinstance(c, dict)]

    def insert_cell(
        self, source: str, cell_type: str = "code", after_cell_id: str | None = None
    ) -> str:
        """Insert after `after_cell_id`, or at the end when it is None.

        The protocol's `after_cell_id: null` means "at the top", so appending sends
        the id of the last cell (null only for an empty notebook).
        """
        check_cell_type(cell_type)
        if after_cell_id is None:
            cells = self.read()
            after_cell_id = cells[-1].id if cells else None
        return self._insert(source, cell_type, after_cell_id)

    def insert_first_cell(self, source: str, cell_type: str = "code") -> str:
        """Insert at the top (the protocol's `after_cell_id: null`)."""
        check_cell_type(cell_type)
        return self._insert(source, cell_type, None)

    def _insert(self, source: str, cell_type: str, after_cell_id: str | None) -> str:
        result = self._call(
            "insert_cell",
            {"source": source, "cell_type": cell_type, "after_cell_id": after_cell_id},
        )
        cell_id = result.get("cell_id")
        if not isinstance(cell_id, str) or not cell_id:
            raise ToolError("The notebook frontend inserted the cell but did not say its id.")
        return cell_id

    def edit_cell(self, cell_id: str, source: str, expected_hash: str) -> None:
        self._call(
            "edit_cell", {"cell_id": cell_id, "source": source, "expected_hash": expected_hash}
        )

    def delete_cell(self, cell_id: str, expected_hash: str) -> None:
        self._call("delete_cell", {"cell_id": cell_id, "expected_hash": expected_hash})

    def set_outputs(
        self, cell_id: str, outputs: list[dict[str, Any]], execution_count: int | None
    ) -> None:
        self._call(
            "set_outputs",
            {"cell_id": cell_id, "outputs": outputs, "execution_count": execution_count},
        )


def _cell_info(cell: dict[str, Any]) -> CellInfo:
    source = cell.get("source", "")
    outputs = cell.get("outputs")
    count = cell.get("execution_count")
    return CellInfo(
        id=str(cell.get("id", "")),
        cell_type=str(cell.get("cell_type", "code")),
        source="".join(source) if isinstance(source, list) else str(source or ""),
        execution_count=count if isinstance(count, int) else None,
        outputs=[o for o in outputs if isinstance(o, dict)] if isinstance(outputs, list) else [],
    )
