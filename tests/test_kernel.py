"""%%agent in real kernels (jupyter_client and nbclient) against the fake server."""

from __future__ import annotations

import base64
import json
import os
import threading
import time

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from tests.fake_anthropic import reply, text, tool_use
from tests.helpers import assert_valid_history, result_text, tool_results
from tests.kernel_helpers import LiveKernel

HISTORY = (
    "import json; from nbagent.jupyter.session import get_session; "
    "print(json.dumps(get_session(get_ipython()).agent.messages))"
)


def kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # let ipykernel pick the inline backend, as in a real notebook
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def kernel(fake_api, in_tmp):
    k = LiveKernel(str(in_tmp), env=kernel_env())
    try:
        yield k
    finally:
        k.stop()


def history(kernel: LiveKernel) -> list[dict]:
    out = kernel.execute(HISTORY)
    return json.loads(out.text().strip().splitlines()[-1])


def test_agent_defines_a_variable_the_next_cell_uses(kernel, fake_api):
    assert kernel.execute("%load_ext nbagent").status == "ok"
    fake_api.enqueue(
        reply(text("I'll compute it."), tool_use("run_python", {"code": "answer = 6 * 7"})),
        "Stored `answer`.",
    )
    run = kernel.execute("%%agent\nPut 6*7 in a variable called answer")
    assert run.status == "ok"
    assert "Stored answer." in run.text() or "Stored `answer`." in run.text()
    assert "run_python" in run.text()
    assert kernel.execute("print(answer + 1)").text().strip() == "43"
    # the agent's code did not take an execution count from the user
    assert kernel.execute("print(len(In))").text().strip() == "5"


def test_matplotlib_plot_reaches_the_model_as_an_image(kernel, fake_api):
    kernel.execute("%load_ext nbagent")
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('trend')\nplt.show()"
    fake_api.enqueue(reply(tool_use("run_python", {"code": code})), "A peak in the middle.")
    run = kernel.execute("%%agent\nplot it")
    assert run.status == "ok"
    blocks = tool_results(fake_api.last_body["messages"][-1])
    images = [b for b in blocks[0]["content"] if b.get("type") == "image"]
    assert images, f"no image block in {blocks}"
    assert base64.b64decode(images[0]["source"]["data"]).startswith(b"\x89PNG")
    # and the user sees the figure in the cell output
    assert any("image/png" in o["content"].get("data", {}) for o in run.final_outputs())


def test_interpolation_in_a_kernel(kernel, fake_api):
    kernel.execute("%load_ext nbagent")
    kernel.execute("numbers = [3, 1, 4, 1, 5]")
    kernel.execute("1/0")
    fake_api.enqueue("ok")
    run = kernel.execute("%%agent\nSort {numbers}; the first cell was {In[1]}; error: {Err}")
    assert run.status == "ok"
    sent = fake_api.last_body["messages"][-1]["content"][0]["text"]
    assert "Sort [3, 1, 4, 1, 5]" in sent
    assert "%load_ext nbagent" in sent
    assert "ZeroDivisionError" in sent
    before = len(fake_api.requests)
    run = kernel.execute("%%agent\nWhat about {missing_name}?")
    assert "missing_name" in run.text() and "not defined" in run.text()
    assert len(fake_api.requests) == before, "nothing is sent when a name is unknown"


class _Interrupter(threading.Thread):
    """Interrupts the kernel once `condition()` holds; remembers when."""

    def __init__(self, kernel: LiveKernel, condition, timeout: float = 60) -> None:
        super().__init__(daemon=True)
        self.kernel, self.condition, self.timeout = kernel, condition, timeout
        self.at: float | None = None
        self.start()

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and not self.condition():
            time.sleep(0.02)
        self.at = time.monotonic()
        self.kernel.interrupt()


def _interrupt_when(kernel: LiveKernel, condition) -> _Interrupter:
    return _Interrupter(kernel, condition)


def test_interrupt_mid_stream_ends_the_turn_and_the_next_cell_works(kernel, fake_api):
    kernel.execute("%load_ext nbagent")
    fake_api.enqueue(reply(text("word " * 400, chunk=5), delay=0.02), "Still here.")
    watcher = _interrupt_when(kernel, lambda: len(fake_api.requests) >= 1)
    run = kernel.execute("%%agent\nwrite a lot", timeout=60)
    ended = time.monotonic()
    watcher.join()
    assert run.status == "ok", run.error_text()
    assert "Interrupted" in run.text()
    # the stream alone would run 8 s more; a loose bound that still proves the stop
    assert ended - watcher.at < 5, f"the turn ended {ended - watcher.at:.1f}s after the interrupt"
    assert_valid_history(history(kernel))
    again = kernel.execute("%%agent\nare you there?")
    assert "Still here." in again.text()


def test_interrupt_mid_tool(kernel, fake_api, in_tmp):
    kernel.execute("%load_ext nbagent")
    code = "import time, pathlib\npathlib.Path('started').touch()\ntime.sleep(60)"
    fake_api.enqueue(reply(tool_use("run_python", {"code": code})), "Recovered.")
    watcher = _interrupt_when(kernel, lambda: (in_tmp / "started").exists())
    run = kernel.execute("%%agent\nsleep", timeout=90)
    ended = time.monotonic()
    watcher.join()
    assert ended - watcher.at < 10, "the 60 s sleep was cut short"
    assert run.status == "ok", run.error_text()
    assert "Interrupted" in run.text()
    messages = history(kernel)
    assert_valid_history(messages)
    blocks = tool_results(messages[-1])
    assert blocks and blocks[0]["is_error"]
    assert "Recovered." in kernel.execute("%%agent\nok?").text()


def test_headless_ask_mode_denies_by_default_and_says_so(fake_api, in_tmp):
    nb = new_notebook()
    nb.cells = [
        new_code_cell("%load_ext nbagent\n%config NBAgent.permission_mode = 'ask'"),
        new_code_cell("%%agent\nmake a file"),
        new_code_cell("import os; print(os.path.exists('made.txt'))"),
    ]
    fake_api.enqueue(
        reply(tool_use("create_file", {"file_path": "made.txt", "content": "x"})), "Could not."
    )
    NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(in_tmp)}}
    ).execute()
    agent_out = "".join(o.get("data", {}).get("text/plain", "") for o in nb.cells[1].outputs)
    assert "Denied create_file" in agent_out and "headless" in agent_out
    assert nb.cells[2].outputs[0]["text"].strip() == "False"
    blocks = tool_results(fake_api.last_body["messages"][-1])
    assert blocks[0]["is_error"] and "did not allow" in result_text(blocks[0])
    nbformat.validate(nb)


def test_headless_policy_allow(fake_api, in_tmp):
    nb = new_notebook()
    nb.cells = [
        new_code_cell(
            "%load_ext nbagent\n%config NBAgent.permission_mode = 'ask'\n"
            "%config NBAgent.headless_approval = 'allow'"
        ),
        new_code_cell("%%agent\nmake a file"),
    ]
    fake_api.enqueue(
        reply(tool_use("create_file", {"file_path": "made.txt", "content": "x"})), "Made it."
    )
    NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(in_tmp)}}
    ).execute()
    assert (in_tmp / "made.txt").read_text() == "x"
    out = "".join(o.get("data", {}).get("text/plain", "") for o in nb.cells[1].outputs)
    assert "Allowed create_file" in out


def test_extension_and_settings_from_ipython_config(fake_api, in_tmp):
    """As ipython_config.py would: c.InteractiveShellApp.extensions and c.NBAgent.*"""
    k = LiveKernel(
        str(in_tmp),
        env=kernel_env(),
        extra_arguments=[
            "--InteractiveShellApp.extensions=nbagent",
            "--NBAgent.model=claude-haiku-4-5",
        ],
    )
    try:
        fake_api.enqueue("configured")
        run = k.execute("%%agent\nhello")
        assert "configured" in run.text(), run.error_text()
        assert fake_api.last_body["model"] == "claude-haiku-4-5"
    finally:
        k.stop()
