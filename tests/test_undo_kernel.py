"""Review and undo in a real kernel, with the notebook open in a frontend.

The frontend is a stand-in that speaks the labextension's protocol (the handshake of
`tests/test_bridge_kernel.py`) and keeps the open notebook's cells in memory, applying
the kernel's edit requests with the same hash check as the labextension. The model is
the fake Messages API. A turn edits a cell, deletes another, writes a file, rebinds a
DataFrame and changes a large array in place; meanwhile the user edits another cell.
`%agent changes` shows the diff; `%agent undo` restores the cells (through the open
notebook, keeping the user's edit), the file and the DataFrame, reports the array as
not restorable, and tells the model; a second `%agent undo` walks one turn further back.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client import KernelManager

from tests.fake_anthropic import reply, tool_use
from tests.helpers import assert_valid_history
from tests.test_bridge_kernel import FakeFrontend

pytestmark = pytest.mark.timeout(600)

NOTEBOOK = "work/analysis.ipynb"
HISTORY = (
    "import json; from nbagent.jupyter.session import get_session; "
    "print(json.dumps(get_session(get_ipython()).agent.messages))"
)


def sha(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


class OpenNotebook:
    """The notebook as the frontend holds it: cells applied as the labextension does,
    a stale `expected_hash` being a conflict that changes nothing."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.cells = [
            {
                "id": cell_id,
                "cell_type": "code",
                "source": source,
                "execution_count": None,
                "outputs": [],
                "metadata": {},
            }
            for cell_id, source in sources.items()
        ]
        self.ops: list[str] = []
        self._new = 0

    def sources(self) -> list[tuple[str, str]]:
        return [(c["id"], c["source"]) for c in self.cells]

    def user_edits(self, cell_id: str, source: str) -> None:
        self._find(cell_id)["source"] = source

    def _find(self, cell_id: str) -> dict[str, Any]:
        return next(c for c in self.cells if c["id"] == cell_id)

    def apply(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        self.ops.append(op)
        if op == "read_notebook":
            return {"ok": True, "result": {"path": NOTEBOOK, "cells": self.cells}}
        if op == "insert_cell":
            self._new += 1
            cell = {
                "id": f"new-{self._new}",
                "cell_type": args["cell_type"],
                "source": args["source"],
                "execution_count": None,
                "outputs": [],
                "metadata": {},
            }
            after = args["after_cell_id"]
            index = 0 if after is None else self.cells.index(self._find(after)) + 1
            self.cells.insert(index, cell)
            return {"ok": True, "result": {"cell_id": cell["id"], "index": index}}
        ids = [c["id"] for c in self.cells]
        if args.get("cell_id") not in ids:
            return {"ok": False, "error": "not_found", "message": "no such cell"}
        cell = self._find(args["cell_id"])
        if op in ("edit_cell", "delete_cell") and sha(cell["source"]) != args["expected_hash"]:
            return {
                "ok": False,
                "error": "conflict",
                "message": f"cell {cell['id']} changed",
                "current_source": cell["source"],
            }
        if op == "edit_cell":
            cell["source"] = args["source"]
        elif op == "delete_cell":
            self.cells.remove(cell)
        elif op == "set_outputs":
            cell["outputs"] = args["outputs"]
        else:
            return {"ok": False, "error": "unknown_op", "message": op}
        return {"ok": True, "result": {}}


class Frontend(FakeFrontend):
    """The stand-in, with a notebook open: a cell runs while its requests are answered."""

    notebook: OpenNotebook

    def run_serving(self, code: str, timeout: float = 180) -> str:
        """Run `code` as a cell, answering the kernel's notebook requests meanwhile;
        return what the cell printed and displayed."""
        msg_id = self.execute(code)
        deadline = time.monotonic() + timeout
        texts: dict[str, str] = {}  # display id (or a counter) -> latest text
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"the cell did not finish: {list(texts.values())[-3:]}"
            try:
                msg = self.kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                continue
            content = msg["content"]
            if msg["msg_type"] == "comm_msg" and content["comm_id"] == self.events_comm_id:
                data = content["data"]
                if data.get("type") == "request" and data.get("client_id") == self.client_id:
                    self.reply(data, **self.notebook.apply(data["op"], data["args"]))
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "status" and content["execution_state"] == "idle":
                break
            key = content.get("transient", {}).get("display_id") or str(len(texts))
            if kind == "stream":
                texts[str(len(texts))] = content["text"]
            elif kind in ("display_data", "update_display_data", "execute_result"):
                texts[key] = content["data"].get("text/plain", "")
            elif kind == "error":
                texts[str(len(texts))] = "\n".join(content["traceback"])
        reply_msg = self.kc.get_shell_msg(timeout=30)
        while reply_msg["parent_header"].get("msg_id") != msg_id:
            reply_msg = self.kc.get_shell_msg(timeout=30)
        out = "".join(texts.values())
        assert reply_msg["content"]["status"] == "ok", out
        return out


@pytest.fixture
def frontend(fake_api, in_tmp) -> Iterator[Frontend]:
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    env.pop("JPY_SESSION_NAME", None)
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(in_tmp))
    kc = km.blocking_client()
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        fe = Frontend(kc)
        fe.notebook = OpenNotebook(
            {
                "c0": "import pandas as pd",
                "c1": "df = load()",
                "c2": "df.plot()",
                "c3": "notes",
            }
        )
        fe.listen()
        fe.subshell_id = fe.control_request("create_subshell_request", {})["subshell_id"]
        fe.open_control(NOTEBOOK)
        fe.next_hello()
        fe.run_serving(
            "import time, nbagent.jupyter.bridge as b\n"
            "t0 = time.monotonic()\n"
            "while not b.get_bridge().clients and time.monotonic() - t0 < 10: time.sleep(0.01)\n"
        )
        yield fe
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def history(fe: Frontend) -> list[dict[str, Any]]:
    return json.loads(fe.run_serving(HISTORY).strip().splitlines()[-1])


def test_undo_restores_cells_a_file_and_a_dataframe_and_reports_what_it_cannot(
    frontend: Frontend, fake_api, in_tmp: Path
) -> None:
    fe, notebook = frontend, frontend.notebook
    (in_tmp / "report.md").write_text("# Report\nold numbers\n")
    fe.run_serving(
        "%load_ext nbagent\n"
        "%config NBAgent.undo_snapshot_mb = 1\n"
        "import numpy as np, pandas as pd\n"
        "df = pd.DataFrame({'a': [1.0, None, 3.0], 'b': [4, 5, 6]})\n"
        "original_df_id = id(df)\n"
        "big = np.zeros(1_000_000)  # 7.6 MB: beyond the 1 MB snapshot limit\n"
    )

    # An earlier turn, so that a second undo has somewhere to go.
    fake_api.enqueue(reply(tool_use("run_python", {"code": "answer = 42"})), "Set.")
    fe.run_serving("%%agent\nput 42 in answer")

    fake_api.enqueue(
        reply(
            tool_use("edit_cell", {"cell_id": "c1", "source": "df = load().dropna()"}),
            tool_use("delete_cell", {"cell_id": "c2"}),
            tool_use("create_file", {"file_path": "report.md", "content": "# Report\nnew\n"}),
            tool_use("run_python", {"code": "df = df.dropna()\nbig += 1"}),
        ),
        "Cleaned the data and updated the report.",
    )
    out = fe.run_serving("%%agent\nclean the data and update the report")
    assert "Cleaned the data" in out
    assert notebook.sources() == [
        ("c0", "import pandas as pd"),
        ("c1", "df = load().dropna()"),
        ("c3", "notes"),
    ]
    assert (in_tmp / "report.md").read_text() == "# Report\nnew\n"
    assert fe.run_serving("print(len(df), big[0])").split() == ["2", "1.0"]
    # Meanwhile the user edits another cell in the open notebook (not saved yet).
    notebook.user_edits("c3", "my own notes")

    changes = fe.run_serving("%agent changes")
    assert "clean the data and update the report" in changes
    assert "-df = load()" in changes and "+df = load().dropna()" in changes
    assert f"cell 'c2' (code) in {NOTEBOOK}: deleted" in changes and "-df.plot()" in changes
    assert "report.md: changed" in changes and "+new" in changes and "-old numbers" in changes
    assert "df: rebound (DataFrame (3, 2) -> DataFrame (2, 2))" in changes
    assert "big: changed in place" in changes and "cannot be undone" in changes

    notebook.ops.clear()
    undone = fe.run_serving("%agent undo")
    assert "Undid turn 2 ('clean the data and update the report'):" in undone
    assert "restored: cell 'c1': its source before the turn" in undone
    assert "restored: deleted cell 'c2' is back as cell 'new-1'" in undone
    assert "restored: report.md: its content before the turn" in undone
    assert "restored: variable df: DataFrame (3, 2) again" in undone
    assert "NOT restored: variable big: it was changed in place, and it is too large" in undone
    assert "7.6 MB" in undone
    # Cells went through the open notebook (edit and insert requests), and the
    # user's edit of another cell survived.
    assert {"edit_cell", "insert_cell"} <= set(notebook.ops)
    assert notebook.sources() == [
        ("c0", "import pandas as pd"),
        ("c1", "df = load()"),
        ("new-1", "df.plot()"),
        ("c3", "my own notes"),
    ]
    assert (in_tmp / "report.md").read_text() == "# Report\nold numbers\n"
    assert fe.run_serving("print(len(df), id(df) == original_df_id, big[0])").split() == [
        "3",
        "True",
        "1.0",
    ]

    # The model is told what was reverted, in a history that stays valid.
    messages = history(fe)
    assert_valid_history(messages)
    note = json.dumps(messages[-1])
    assert "The user undid the changes of turn 2" in note and "Not restored: variable big" in note
    fake_api.enqueue("Understood.")
    fe.run_serving("%%agent\nwhat changed?")
    sent = json.dumps(fake_api.last_body["messages"])
    assert "The user undid the changes of turn 2" in sent and "what changed?" in sent

    # A second undo walks back to the first turn; then there is nothing left.
    assert "restored: variable answer: removed" in fe.run_serving("%agent undo")
    assert "NameError" in fe.run_serving(
        "try:\n    answer\nexcept NameError as e:\n    print('NameError')"
    )
    assert "Nothing to undo" in fe.run_serving("%agent undo")

    # Undo puts a deleted first cell back at the top: the open notebook inserts there.
    fe.run_serving(
        "from nbagent.jupyter.session import get_session\n"
        "get_session(get_ipython())._document().insert_first_cell('# Title', 'markdown')"
    )
    assert notebook.cells[0]["source"] == "# Title"
    assert notebook.cells[0]["cell_type"] == "markdown"


def test_a_notebook_file_inserts_a_cell_at_the_top(tmp_path: Path) -> None:
    import nbformat

    from nbagent.notebook.file_backend import FileNotebook

    path = tmp_path / "n.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, str(path))
    new = FileNotebook(path).insert_first_cell("import pandas as pd")
    cells = nbformat.read(str(path), as_version=4).cells
    assert [(c["id"], c["source"]) for c in cells][0] == (new, "import pandas as pd")
    assert len(cells) == 2
