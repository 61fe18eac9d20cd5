"""Every tool line of a `%%agent` cell ends with its result summary, whatever the tool
displayed: live (the outputs as a frontend sees them, updates applied) and in the
saved notebook. A figure or a table a tool shows comes after its line."""

from __future__ import annotations

import os
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from nbagent.events import ToolCall, ToolCallEvent, ToolOutput, ToolResultEvent, TurnEnd
from nbagent.jupyter.cell_output import CellOutput
from nbagent.render.transcript import Transcript
from tests.fake_anthropic import reply, text, tool_use
from tests.kernel_helpers import LiveKernel

PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('trend')\nplt.show()"
TABLE = (
    "from IPython.display import HTML, display\ndisplay(HTML('<table><tr><td>7</td></tr></table>'))"
)


def kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the inline backend, as in a real notebook
    return env


def plain(output: dict[str, Any]) -> str:
    data = output.get("data") or {}
    return str(data.get("text/plain", output.get("text", "")))


def tool_line_outputs(outputs: list[dict[str, Any]]) -> list[int]:
    return [i for i, o in enumerate(outputs) if "[tool] run_python(" in plain(o)]


def with_mime(outputs: list[dict[str, Any]], mime: str) -> list[int]:
    return [i for i, o in enumerate(outputs) if mime in (o.get("data") or {})]


def assert_final_lines(outputs: list[dict[str, Any]]) -> None:
    for o in outputs:
        assert "-> running" not in plain(o), plain(o)
        markdown = str((o.get("data") or {}).get("text/markdown", ""))
        assert "` …" not in markdown, markdown
    for i in tool_line_outputs(outputs):
        line = next(t for t in plain(outputs[i]).splitlines() if "[tool] run_python(" in t)
        assert "-> ok:" in line, line  # the status and the result summary after it


@pytest.fixture
def notebook_run(fake_api, in_tmp):
    def run(prompt: str) -> list[dict[str, Any]]:
        nb = new_notebook(cells=[new_code_cell("%load_ext nbagent"), new_code_cell(prompt)])
        client = NotebookClient(
            nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(in_tmp)}}
        )
        client.execute(env=kernel_env())
        path = in_tmp / "saved.ipynb"
        nbformat.write(nb, path)
        saved = nbformat.read(path, as_version=4)
        return [dict(o) for o in saved.cells[1].outputs]

    return run


def test_a_figure_follows_its_finished_tool_line_in_the_saved_notebook(fake_api, notebook_run):
    fake_api.enqueue(
        reply(text("I'll plot it."), tool_use("run_python", {"code": PLOT})),
        "A peak in the middle.",
    )
    outputs = notebook_run("%%agent\nplot it")
    assert_final_lines(outputs)
    [line] = tool_line_outputs(outputs)
    [figure] = with_mime(outputs, "image/png")
    assert line < figure
    answer = next(i for i, o in enumerate(outputs) if "A peak in the middle." in plain(o))
    assert figure < answer
    assert "1 image" in plain(outputs[line]) or "image" in plain(outputs[line])


def test_a_turn_that_starts_with_a_plot_leaves_no_running_line(fake_api, notebook_run):
    # No text before the call: the live display holds only the tool line when the
    # figure arrives.
    fake_api.enqueue(reply(tool_use("run_python", {"code": PLOT})), "Plotted.")
    outputs = notebook_run("%%agent\nplot it")
    assert_final_lines(outputs)
    [line] = tool_line_outputs(outputs)
    [figure] = with_mime(outputs, "image/png")
    assert line < figure
    assert all(plain(o).strip() for o in outputs), "no empty output left behind"


def test_two_calls_in_one_message_each_with_its_output_live(fake_api, in_tmp):
    fake_api.enqueue(
        reply(
            tool_use("run_python", {"code": PLOT}),
            tool_use("run_python", {"code": TABLE}),
        ),
        "Both shown.",
    )
    kernel = LiveKernel(str(in_tmp), env=kernel_env())
    try:
        assert kernel.execute("%load_ext nbagent").status == "ok"
        run = kernel.execute("%%agent\nplot and tabulate")
    finally:
        kernel.stop()
    assert run.status == "ok", run.error_text()
    outputs = [dict(o["content"]) for o in run.final_outputs()]
    assert_final_lines(outputs)
    lines = [plain(o) for o in outputs]
    assert sum(line.count("[tool] run_python(") for line in lines) == 2
    [figure] = with_mime(outputs, "image/png")
    [table] = with_mime(outputs, "text/html")
    first_line = next(i for i, t in enumerate(lines) if "[tool] run_python(" in t)
    assert first_line < figure < table


class Recorder:
    """IPython's display(), recording outputs with display-id updates applied."""

    def __init__(self) -> None:
        self.outputs: list[dict[str, Any]] = []

    def __call__(self, bundle: dict[str, Any], *, raw: bool, display_id: bool = False) -> Any:
        self.outputs.append(bundle)
        index = len(self.outputs) - 1
        recorder = self

        class Handle:
            def update(self, new: dict[str, Any], *, raw: bool) -> None:
                recorder.outputs[index] = new

        return Handle() if display_id else None


def test_a_call_running_in_a_full_window_is_not_frozen_at_running():
    display = Recorder()
    out = CellOutput(Transcript(), window_chars=50, display=display)
    first = ToolCall("a", "run_python", {"code": "x = 1  # " + "long " * 30})
    second = ToolCall("b", "run_python", {"code": "y = 2"})
    out.handle(ToolCallEvent(first))
    out.handle(ToolCallEvent(second))
    out.show_bundles([{"image/png": "iVBORw0KGgo="}])
    out.handle(ToolResultEvent(first, ToolOutput("done", summary="first done")))
    out.handle(ToolResultEvent(second, ToolOutput("done", summary="second done")))
    out.handle(TurnEnd("end_turn"))
    texts = [o["text/plain"] for o in display.outputs]
    assert not any("-> running" in t for t in texts), texts
    assert any("first done" in t for t in texts) and any("second done" in t for t in texts)
    figure = next(i for i, o in enumerate(display.outputs) if "image/png" in o)
    assert "first done" in "".join(texts[:figure])
