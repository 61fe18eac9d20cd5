"""The quickstart notebook runs top to bottom in a real kernel (fake model)."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.fake_anthropic import reply, text, tool_use
from tests.helpers import tool_results

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

PLOT_CODE = """\
import matplotlib.pyplot as plt
weekly = sales.pivot_table(index="week", columns="region", values="revenue", aggfunc="sum")
weekly.plot(figsize=(8, 4), title="Weekly revenue by region")
plt.show()
"""


def test_quickstart_notebook_runs(fake_api, in_tmp, monkeypatch):
    shutil.copytree(NOTEBOOKS, in_tmp / "notebooks")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    fake_api.enqueue(
        reply(text("Let me look."), tool_use("inspect_variable", {"name": "sales"})),
        "624 rows, 7 columns; a few missing revenue values.",
        reply(tool_use("run_python", {"code": PLOT_CODE})),
        "- West grows steadily\n- a holiday bump\n- North is flat",
        "West grew fastest.",
    )
    path = in_tmp / "notebooks" / "quickstart.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()

    requests = [r["body"] for r in fake_api.requests]
    assert len(requests) == 5
    # the agent saw the real DataFrame
    inspected = tool_results(requests[1]["messages"][-1])[0]["content"]
    assert "624" in str(inspected) and "revenue" in str(inspected)
    # the plot reached the model as an image, and the user as a PNG output
    plot_result = tool_results(requests[3]["messages"][-1])[0]["content"]
    image = next(b for b in plot_result if b["type"] == "image")
    assert base64.b64decode(image["source"]["data"]).startswith(b"\x89PNG")
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert any("image/png" in o.get("data", {}) for o in code_cells[3].outputs)
    # `weekly`, defined by the agent, is used by the next cell
    assert "West" in code_cells[4].outputs[0]["data"]["text/plain"]
    # {Out[5]} put that table into the last prompt
    assert "West" in requests[4]["messages"][-1]["content"][0]["text"]
    usage = "".join(o.get("text", "") for o in code_cells[6].outputs)
    assert "$" in usage
    assert "West grew fastest." in "".join(
        o.get("data", {}).get("text/plain", "") for o in code_cells[5].outputs
    )
