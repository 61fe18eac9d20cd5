"""Frontends without the labextension (VS Code, Colab, nbviewer, nbconvert): every
output reads as text and has a rich form, tool lines say what the tool gave back, the
widget panel works with ipywidgets alone, and the saved notebook renders to HTML.

One notebook is executed once with nbclient (one kernel) against the fake server;
the tests read its outputs and its nbconvert HTML rendering.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from nbagent.events import ToolOutput
from nbagent.jupyter.live import live_tools
from nbagent.tools.runner import summarize
from tests.fake_anthropic import FakeAnthropic, env_for, error, reply, text, tool_use

LOAD, ANSWER, FAILED, PANEL, PANEL_SEND = range(5)
RICH = ("text/html", "text/markdown", "image/png", "image/jpeg", "image/svg+xml")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[nbformat.NotebookNode, Path]:
    """The notebook, run headless by nbclient and saved; and where it was saved."""
    where = tmp_path_factory.mktemp("plain")
    nb = new_notebook()
    nb.cells = [
        new_code_cell("%load_ext nbagent"),
        new_code_cell("%%agent\nWhat is 6*7?"),
        new_code_cell("%%agent\nSummarise everything"),
        new_code_cell("from nbagent import chat\npanel = chat()\npanel"),
        new_code_cell(
            "panel.send('hi from the panel')\n"
            "assert panel.wait(60)\n"
            "print(panel.error_label.value or 'panel turn ended without an error')"
        ),
    ]
    with FakeAnthropic() as server:
        server.enqueue(
            reply(text("Let me compute."), tool_use("run_python", {"code": "print(6 * 7)"})),
            "The answer is **42**.",
            error(400, "prompt is too long"),
            "Hello from the panel.",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
        env.pop("MPLBACKEND", None)
        env.update(env_for(server))
        client = NotebookClient(
            nb,
            timeout=120,
            kernel_name="python3",
            allow_errors=True,  # the failing cell raises (headless): keep going to record it
            resources={"metadata": {"path": str(where)}},
        )
        client.execute(env=env)
    path = where / "saved.ipynb"
    nbformat.write(nb, path)
    return nb, path


def displays(cell: Any) -> list[dict[str, Any]]:
    return [o for o in cell.outputs if o["output_type"] in ("display_data", "execute_result")]


def plain(cell: Any) -> str:
    return "\n".join(o["data"].get("text/plain", "") for o in displays(cell))


# -- outputs ------------------------------------------------------------------


def test_every_agent_output_reads_as_text_and_has_a_rich_form(executed: Any) -> None:
    nb, _ = executed
    for index in (ANSWER, FAILED):
        outputs = displays(nb.cells[index])
        assert outputs
        for out in outputs:
            data = out["data"]
            assert data.get("text/plain", "").strip(), data
            assert any(m in data for m in RICH), sorted(data)
            # Only the final state is kept: no transient progress note.
            assert "[nbagent:" not in data["text/plain"]


def test_the_answer_and_the_tool_line_read_without_noise(executed: Any) -> None:
    nb, _ = executed
    text_out = plain(nb.cells[ANSWER])
    assert "Let me compute." in text_out and "The answer is **42**." in text_out
    assert "[tool] run_python(code=print(6 * 7)) -> ok: 42" in text_out
    assert "ok: ok" not in text_out


def test_a_failed_cell_says_why_in_text_and_raises_one_line(executed: Any) -> None:
    nb, _ = executed
    cell = nb.cells[FAILED]
    assert "Error: API error 400: prompt is too long." in plain(cell)
    [err] = [o for o in cell.outputs if o["output_type"] == "error"]
    assert err["ename"] == "AgentCellError"
    assert len(err["traceback"]) == 1 and "\x1b[" not in err["traceback"][0]
    assert err["traceback"][0].startswith("AgentCellError: API error 400: prompt is too long.")


def test_the_panel_works_with_ipywidgets_alone(executed: Any) -> None:
    """No labextension in an nbclient run: the panel's turn runs, and its widgets (saved
    as the notebook's widget state, which VS Code, Colab and nbviewer render) hold it."""
    nb, _ = executed
    [out] = nb.cells[PANEL_SEND].outputs
    assert out["text"].strip() == "panel turn ended without an error"
    [view] = displays(nb.cells[PANEL])
    assert WIDGET_VIEW in view["data"]
    state = json.dumps(nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"])
    assert view["data"][WIDGET_VIEW]["model_id"] in state
    assert "hi from the panel" in state and "Hello from the panel." in state


def test_the_panel_output_reads_as_text_without_widgets(executed: Any) -> None:
    """Where widgets do not render (nbviewer without state, a text-only viewer), the
    panel's text/plain says what it is, not a dump of its widget tree."""
    nb, _ = executed
    text_out = displays(nb.cells[PANEL])[0]["data"]["text/plain"]
    assert "children=" not in text_out and "<div" not in text_out
    assert "nbagent" in text_out.lower()


# -- nbconvert --to html of the saved notebook -------------------------------


@pytest.fixture(scope="module")
def html(executed: Any) -> str:
    _, path = executed
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(path)],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return path.with_suffix(".html").read_text()


def test_nbconvert_html_shows_the_answer_and_the_tool_line(html: str) -> None:
    assert "<p>Let me compute.</p>" in html
    assert "The answer is <strong>42</strong>." in html
    assert "<code>⚙ run_python(code=print(6 * 7))</code> ✓ 42" in html


def test_nbconvert_html_shows_the_failure(html: str) -> None:
    assert "API error 400: prompt is too long." in html
    assert "AgentCellError" in html


def test_nbconvert_html_carries_the_panel(html: str) -> None:
    state = re.search(
        r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>', html, re.S
    )
    assert state is not None and "Hello from the panel." in state.group(1)


# -- tool result summaries ----------------------------------------------------


def test_summary_skips_section_labels() -> None:
    output = ToolOutput("[stdout]\nhello\nagain\n[stderr]\nwarned\n[Out]\n42")
    assert summarize(output) == "hello (+3 lines)"
    html_only = ToolOutput("[display]\n(text/html)\n<b>table</b>")
    assert summarize(html_only) == "<b>table</b>"
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x"}}
    figure = ToolOutput([{"type": "text", "text": "[display]\n<Figure>"}, image])
    assert summarize(figure) == "<Figure> [1 image]"


def test_summary_of_plain_tools_is_their_first_line() -> None:
    assert summarize(ToolOutput("line one\n\nline three")) == "line one (+1 lines)"
    assert summarize(ToolOutput("")) == ""
    assert summarize(ToolOutput("x" * 300), width=10) == "x" * 9 + "…"


@pytest.fixture
def run_python(ipython: Any) -> Any:
    [tool] = [t for t in live_tools(ipython) if t.name == "run_python"]
    return lambda code: tool.call({"code": code})


def test_run_python_summary_is_what_the_code_gave_back(run_python: Any) -> None:
    assert run_python("print(6 * 7)").summary == "42"
    assert run_python("print('a')\nprint('b')").summary == "a (+1 lines)"
    assert run_python("6 * 7").summary == "42"
    assert run_python("zz_quiet = 1").summary == "(no output)"
    failed = run_python("1 / 0")
    assert failed.is_error and failed.summary == "ZeroDivisionError: division by zero"
