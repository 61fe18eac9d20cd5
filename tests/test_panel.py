"""The chat panel (`nbagent.chat()`), driven in-process against the fake server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import ipywidgets as widgets
import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbagent.jupyter.panel import ChatPanel, chat
from nbagent.jupyter.session import drop_session, get_session
from nbagent.tools.base import tool
from tests.fake_anthropic import error, reply, text, thinking, tool_use
from tests.helpers import assert_valid_history, result_text, tool_results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def shell(in_tmp, ipython: InteractiveShell) -> Iterator[InteractiveShell]:
    drop_session(ipython)
    yield ipython
    if "nbagent" in ipython.extension_manager.loaded:
        ipython.extension_manager.unload_extension("nbagent")
    drop_session(ipython)


@pytest.fixture
def panel(shell) -> Iterator[ChatPanel]:
    p = chat(shell)
    yield p
    p.stop()
    assert p.wait(10), "the panel's turn did not end"


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def images(widget) -> list[widgets.Image]:
    found = [widget] if isinstance(widget, widgets.Image) else []
    for child in getattr(widget, "children", ()):
        found += images(child)
    return found


def shown(widget) -> bool:
    return widget.layout.display != "none"


# --------------------------------------------------------------------------- basics


def test_panel_is_a_vbox_with_css_classes(panel):
    assert isinstance(panel, widgets.VBox)
    assert "jp-nbagent-panel" in panel._dom_classes
    for w in (panel.history, panel.input, panel.send_button, panel.stop_button, panel.usage_label):
        assert any(c.startswith("jp-nbagent-panel-") for c in w._dom_classes)
    assert not shown(panel.approval_box)
    assert panel.stop_button.disabled and not panel.send_button.disabled


def test_streamed_answer_appears_in_history(fake_api, panel):
    fake_api.enqueue(reply(thinking("let me think"), text("Hello **world**, all fine.")))
    panel.input.value = "hi there"
    panel.send_button.click()
    assert panel.input.value == ""
    assert panel.wait(10)
    html = panel.history_html()
    assert "hi there" in html  # the user's message
    assert "<strong>world</strong>" in html  # Markdown rendered as HTML
    assert "<details" in html and "let me think" in html  # thinking, collapsed
    assert "$" in panel.usage_label.value and " in (" in panel.usage_label.value
    assert not panel.send_button.disabled and panel.stop_button.disabled
    assert fake_api.last_body["messages"][0]["content"][0]["text"] == "hi there"


def test_tool_turn_shows_the_tool_line_and_runs_in_the_namespace(fake_api, panel, shell):
    fake_api.enqueue(
        reply(text("Computing."), tool_use("run_python", {"code": "answer = 6 * 7"})),
        "Stored it in `answer`.",
    )
    panel.send("put 6*7 in answer")
    assert panel.wait(10)
    html = panel.history_html()
    assert "⚙ <b>run_python</b>" in html and "✓" in html
    assert "Stored it in" in html
    assert shell.user_ns["answer"] == 42
    assert_valid_history(panel.session.agent.messages)


def test_plot_from_run_python_is_shown_as_an_image(fake_api, panel):
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"
    fake_api.enqueue(reply(tool_use("run_python", {"code": code})), "A peak.")
    panel.send("plot it")
    assert panel.wait(20)
    found = images(panel.history)
    assert len(found) == 1, "the figure is shown once (not again from the tool result)"
    assert bytes(found[0].value).startswith(PNG_MAGIC)
    assert "jp-nbagent-panel-image" in found[0]._dom_classes
    # the image sits after the tool line, before the final answer
    turn = panel.history.children[-1]
    kinds = [type(c).__name__ for c in turn.children]
    assert kinds.index("Image") > 0 and kinds[-1] == "HTML"
    assert "A peak." in turn.children[-1].value


def test_image_blocks_of_tool_results_are_shown(fake_api, panel):
    import base64

    png = PNG_MAGIC + b"fake"

    @tool(read_only=True)
    def snapshot() -> list:
        """Return a picture."""
        data = base64.b64encode(png).decode()
        return [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
        ]

    panel.session.agent.add_tools([snapshot])
    fake_api.enqueue(reply(tool_use("snapshot", {})), "Nice picture.")
    panel.send("show me")
    assert panel.wait(10)
    assert [bytes(i.value) for i in images(panel.history)] == [png]


# --------------------------------------------------------------------------- one conversation


def test_conversation_is_shared_with_agent_cells(fake_api, panel, shell):
    fake_api.enqueue("First answer.")
    panel.send("first question")
    assert panel.wait(10)
    agent = get_session(shell).agent
    assert agent is panel.session.agent
    assert len(agent.messages) == 2

    fake_api.enqueue("Second answer, from the cell.")
    shell.run_cell_magic("agent", "", "second question")
    assert len(agent.messages) == 4
    sent = fake_api.last_body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert "First answer." in str(sent[1]["content"])

    # the panel picks up the cell's turn before its next message
    fake_api.enqueue("Third answer.")
    panel.send("third question")
    assert panel.wait(10)
    html = panel.history_html()
    order = [
        html.index(s)
        for s in (
            "first question",
            "First answer.",
            "second question",
            "Second answer, from the cell.",
            "third question",
            "Third answer.",
        )
    ]
    assert order == sorted(order)
    assert len(agent.messages) == 6
    assert_valid_history(agent.messages)


def test_opening_mid_session_renders_the_history(shell, fake_api):
    shell.extension_manager.load_extension("nbagent")
    fake_api.enqueue(
        reply(thinking("hmm"), tool_use("run_python", {"code": "print('hello')"})),
        "It printed hello.",
    )
    shell.run_cell_magic("agent", "", "say hello with python")
    p = chat(shell)
    html = p.history_html()
    assert "say hello with python" in html
    assert "⚙ <b>run_python</b>" in html and "✓" in html and ">hello<" in html
    assert "<details" in html and "It printed hello." in html
    assert "$" in p.usage_label.value


def test_reset_clears_the_panel_history(fake_api, panel, shell):
    fake_api.enqueue("one")
    panel.send("before reset")
    assert panel.wait(10)
    shell.run_line_magic("agent", "reset")
    fake_api.enqueue("two")
    panel.send("after reset")
    assert panel.wait(10)
    html = panel.history_html()
    assert "before reset" not in html and "after reset" in html


# --------------------------------------------------------------------------- approvals


def ask_mode(panel: ChatPanel, fake_api) -> None:
    panel.session.agent.permission_mode = "ask"
    fake_api.enqueue(
        reply(text("Running."), tool_use("run_python", {"code": "approved = 5"})), "Done."
    )
    panel.send("set approved")
    assert panel.wait(10)


def test_ask_mode_shows_approval_buttons_and_allow_resumes(fake_api, panel, shell):
    ask_mode(panel, fake_api)
    assert shown(panel.approval_box)
    assert "run_python" in panel.approval_text.value and "approved = 5" in panel.approval_text.value
    assert panel.session.agent.pending_approval is not None
    assert "approved" not in shell.user_ns
    assert "waiting for your approval" in panel.history_html()

    panel.allow_button.click()
    assert panel.wait(10)
    assert not shown(panel.approval_box)
    assert shell.user_ns["approved"] == 5
    html = panel.history_html()
    assert "Allowed once: run_python" in html and "Done." in html
    assert "waiting for your approval" not in html
    assert_valid_history(panel.session.agent.messages)


def test_always_remembers_the_tool(fake_api, panel):
    ask_mode(panel, fake_api)
    panel.always_button.click()
    assert panel.wait(10)
    assert "run_python" in panel.session.agent.session.always_allowed


def test_deny_gives_a_denied_result(fake_api, panel, shell):
    ask_mode(panel, fake_api)
    panel.deny_button.click()
    assert panel.wait(10)
    assert "approved" not in shell.user_ns
    [result] = tool_results(fake_api.last_body["messages"][-1])
    assert result["is_error"] and "denied" in result_text(result).lower()
    html = panel.history_html()
    assert "Denied: run_python" in html and "✗" in html
    assert not shown(panel.approval_box)
    assert_valid_history(panel.session.agent.messages)


def test_new_message_while_waiting_abandons_the_call(fake_api, panel):
    ask_mode(panel, fake_api)
    fake_api.clear()
    fake_api.enqueue("Fine, skipped.")
    panel.send("never mind")
    assert panel.wait(10)
    assert not shown(panel.approval_box)
    assert panel.session.agent.pending_approval is None
    assert_valid_history(panel.session.agent.messages)


# --------------------------------------------------------------------------- stop, errors


def test_stop_during_a_slow_stream(fake_api, panel):
    fake_api.enqueue(reply(text("x" * 2000), delay=0.02))
    panel.send("write a lot")
    wait_until(lambda: "xxxxxxxxxx" in panel.history_html())
    assert panel.running and not panel.stop_button.disabled
    started = time.monotonic()
    panel.stop_button.click()
    assert panel.wait(10)
    assert time.monotonic() - started < 2
    assert "Interrupted" in panel.history_html()
    messages = panel.session.agent.messages
    assert_valid_history(messages)
    assert messages[-1]["role"] == "assistant"
    assert messages[-1]["content"][0]["text"].endswith("[interrupted]")

    fake_api.enqueue("Back again.")
    panel.send("continue")
    assert panel.wait(10)
    assert "Back again." in panel.history_html()
    assert_valid_history(panel.session.agent.messages)


def test_stop_right_after_send_is_not_lost(fake_api, panel):
    fake_api.enqueue(reply(text("y" * 2000), delay=0.02))
    panel.send("go")
    panel.stop()  # before the loop has started
    assert panel.wait(10)
    assert "Interrupted" in panel.history_html()
    assert_valid_history(panel.session.agent.messages)


def test_missing_api_key_is_one_line(panel):
    panel.send("hi")
    assert panel.wait(10)
    html = panel.history_html()
    assert html.count("ANTHROPIC_API_KEY is not set") == 1
    assert "Traceback" not in html
    [line] = [ln for ln in html.splitlines() if "ANTHROPIC_API_KEY" in ln]
    assert "Error:" in line
    assert not panel.send_button.disabled


def test_api_error_is_one_line(fake_api, panel):
    fake_api.enqueue(error(400, "prompt is too long"))
    panel.send("hi")
    assert panel.wait(10)
    html = panel.history_html()
    assert "API error 400: prompt is too long" in html
    assert "Traceback" not in html


def test_busy_agent_shows_one_line_error(fake_api, panel):
    agent = panel.session.agent
    fake_api.enqueue(reply(text("z" * 400, chunk=5), delay=0.01))
    started = threading.Event()

    def cell() -> None:
        for _ in agent.stream("a cell is running"):
            started.set()

    t = threading.Thread(target=cell)
    t.start()
    try:
        assert started.wait(10)
        panel.input.value = "from the panel"
        panel.send_button.click()
        assert panel.wait(10)
        assert "busy" in panel.error_label.value
        assert shown(panel.error_label)
        assert "from the panel" not in panel.history_html()
        assert panel.input.value == "from the panel"  # kept for a retry
    finally:
        t.join(10)
    fake_api.enqueue("now it works")
    panel.send_button.click()
    assert panel.wait(10)
    assert not shown(panel.error_label)
    assert "now it works" in panel.history_html()


def test_send_while_running_is_refused(fake_api, panel):
    fake_api.enqueue(reply(text("w" * 600), delay=0.01))
    panel.send("first")
    assert panel.send_button.disabled
    panel.send("second")
    assert "running" in panel.error_label.value
    panel.stop()
    assert panel.wait(10)
    assert "second" not in panel.history_html()


# --------------------------------------------------------------------------- threads, streaming


@tool(read_only=True, main_thread=True)
def where_am_i() -> str:
    """Name the thread this tool runs on."""
    where_am_i.seen = threading.current_thread()  # type: ignore[attr-defined]
    return threading.current_thread().name


def test_main_thread_tools_run_on_the_panels_event_loop(shell, fake_api):
    loop = asyncio.new_event_loop()
    try:
        p = ChatPanel(get_session(shell), loop=loop)
        p.session.agent.add_tools([where_am_i])
        fake_api.enqueue(reply(tool_use("where_am_i", {})), "Thanks.")
        p.send("where?")

        async def idle_kernel() -> None:  # the kernel's loop, idle while the turn runs
            while p.running:
                await asyncio.sleep(0.01)

        loop.run_until_complete(asyncio.wait_for(idle_kernel(), 10))
        assert p.wait(5)
    finally:
        loop.close()
    assert where_am_i.seen is threading.current_thread()
    assert p.session.agent.tool_runner.main_thread_dispatch is None  # restored
    [result] = tool_results(fake_api.last_body["messages"][-1])
    assert result_text(result) == threading.current_thread().name


def test_wait_on_the_main_thread_runs_its_tool_calls(shell, fake_api):
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(
        target=loop.run_forever, daemon=True
    )  # "running", never serves us
    loop_thread.start()
    try:
        p = ChatPanel(get_session(shell), loop=loop)
        p.session.agent.add_tools([where_am_i])
        fake_api.enqueue(reply(tool_use("where_am_i", {})), "Thanks.")
        p.send("where?")
        assert p.wait(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(5)
        loop.close()
    assert where_am_i.seen is threading.current_thread() or where_am_i.seen is loop_thread


def test_without_a_loop_tools_run_directly(fake_api, panel):
    panel.session.agent.add_tools([where_am_i])
    fake_api.enqueue(reply(tool_use("where_am_i", {})), "Thanks.")
    panel.send("where?")
    assert panel.wait(10)
    assert where_am_i.seen.name == "nbagent-panel-turn"


def test_long_answer_is_frozen_into_bounded_widgets(shell, fake_api):
    paragraph = "word " * 60 + "\n\n"
    fake_api.enqueue(reply(text(paragraph * 40, chunk=50)))
    p = chat(shell)
    p.send("write an essay")
    assert p.wait(20)
    turn = p.history.children[-1]
    parts = [c for c in turn.children if isinstance(c, widgets.HTML)]
    assert len(parts) >= 4, "completed parts are frozen into their own widgets"
    assert all(len(c.value) < 4 * p.window_chars for c in parts)
    assert p.history_html().count("word") == 60 * 40


def test_updates_are_throttled(shell, fake_api):
    fake_api.enqueue(reply(text("a" * 1500, chunk=3), delay=0.002))  # ~500 deltas over ~1 s
    p = chat(shell)
    p.send("stream")
    assert p.wait(20)
    view = p._view
    assert view is not None
    elapsed = time.monotonic() - view.transcript.started
    # ~500 deltas; one update per interval at most, plus the final and frozen parts
    # (slack for a loaded machine, where the final update can land just after a timed one).
    assert view.updates <= elapsed / p.interval + 10
    assert "a" * 1500 in p.history_html()


# --------------------------------------------------------------------------- a real kernel

KERNEL_SETUP = """\
import threading
import nbagent
from nbagent.tools.base import tool

@tool(read_only=True, main_thread=True)
def where_am_i() -> str:
    \"\"\"Name the thread this tool runs on.\"\"\"
    return threading.current_thread().name

p = nbagent.chat()
p.session.agent.add_tools([where_am_i])
p.send("where are you?")
print("sent", p.running)
"""


@pytest.fixture
def kernel(fake_api, in_tmp):
    import os

    from tests.kernel_helpers import LiveKernel

    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the inline backend, as in a notebook
    env["PYTHONUNBUFFERED"] = "1"
    k = LiveKernel(str(in_tmp), env=env)
    try:
        yield k
    finally:
        k.stop()


def wait_idle_panel(kernel, timeout: float = 30) -> None:
    """Poll from the client, leaving the kernel idle in between (as a user would)."""
    deadline = time.monotonic() + timeout
    while kernel.execute("print(p.running)").text().strip() != "False":
        if time.monotonic() > deadline:
            raise AssertionError("the panel's turn did not end")
        time.sleep(0.1)


def test_in_a_kernel_main_thread_tools_run_on_the_kernel_thread(kernel, fake_api):
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()\nin_kernel = 1"
    fake_api.enqueue(
        reply(tool_use("where_am_i", {})),
        reply(tool_use("run_python", {"code": code})),
        "Done.",
    )
    run = kernel.execute(KERNEL_SETUP)
    assert run.status == "ok", run.text()
    assert "sent True" in run.text()  # the cell returned while the turn runs
    wait_idle_panel(kernel)
    first = tool_results(fake_api.requests[1]["body"]["messages"][-1])
    assert result_text(first[0]) == "MainThread"
    assert kernel.execute("print(in_kernel)").text().strip() == "1"
    check = kernel.execute(
        "import ipywidgets as w\n"
        "def images(x):\n"
        "    return ([x] if isinstance(x, w.Image) else []) + [\n"
        "        i for c in getattr(x, 'children', ()) for i in images(c)]\n"
        "found = images(p.history)\n"
        "print(len(found), bytes(found[0].value[:8]) == b'\\x89PNG\\r\\n\\x1a\\n')\n"
        "print('Done.' in p.history_html())"
    )
    assert check.text().split() == ["1", "True", "True"], check.text()


def click(kernel, model_id: str) -> None:
    """What the frontend sends when a button is clicked."""
    content = {"comm_id": model_id, "data": {"method": "custom", "content": {"event": "click"}}}
    kernel.client.shell_channel.send(kernel.client.session.msg("comm_msg", content))


def test_in_a_kernel_stop_click_arrives_while_the_turn_streams(kernel, fake_api):
    fake_api.enqueue(reply(text("x" * 2000), delay=0.02))
    run = kernel.execute(
        "import nbagent\np = nbagent.chat()\np.send('go')\nprint(p.stop_button.model_id)"
    )
    assert run.status == "ok", run.text()
    stop_id = run.text().strip()
    time.sleep(0.3)
    click(kernel, stop_id)
    started = time.monotonic()
    wait_idle_panel(kernel)
    assert time.monotonic() - started < 10
    check = kernel.execute("print('Interrupted' in p.history_html())")
    assert check.text().strip() == "True"


def test_dispatch_leaves_other_turns_alone(fake_api, panel):
    """Calls that are not from the panel's worker (a %%agent cell's tools, on the
    main thread) run as they are, with the session's display target untouched."""
    target = object()
    panel.session.on_display = target  # type: ignore[assignment]
    try:
        assert panel.worker.dispatch(lambda: panel.session.on_display) is target
    finally:
        panel.session.on_display = None


def test_a_new_panel_offers_a_pending_approval(fake_api, panel, shell):
    ask_mode(panel, fake_api)
    again = chat(shell)
    assert shown(again.approval_box)
    again.deny_button.click()
    assert again.wait(10)
    assert panel.session.agent.pending_approval is None
    assert "approved" not in shell.user_ns
