"""The session owns the turn (issue 7), through the Python API and an InteractiveShell.

- Breaking out of `agent.stream()` or `async for ... in agent.astream()` while keeping a
  reference: the next run starts at once, and every request after is valid.
- `%agent reset`, `agent.reset()` and `%%agent --new` while the widget panel's turn runs
  (in its worker thread): the reset waits for that turn, and every later request starts
  with the user and answers every tool call.
- A tool that raises SystemExit: its call is answered in `agent.messages` before the
  exit propagates.
- `%agent what did you compute?` reaches the agent with its `?`.
- `%config` between turns holds for the panel's next turn too.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbagent import Agent
from nbagent.errors import AgentBusyError
from nbagent.events import TextDelta, ToolCallEvent
from nbagent.jupyter.panel import ChatPanel, chat
from nbagent.jupyter.session import drop_session, get_session
from nbagent.tools.base import tool
from tests.fake_anthropic import FakeAnthropic, reply, text, tool_use
from tests.helpers import assert_valid_history, result_text, tool_results

WAIT = 10.0  # seconds a condition may take before the test fails (a hang guard, not a target)


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def every_request_is_valid(server: FakeAnthropic) -> None:
    """What the API checks: first message from the user, every tool_use answered next."""
    bodies = [r["body"] for r in server.requests if r["path"] == "/v1/messages"]
    assert bodies, "no request reached the fake"
    for i, body in enumerate(bodies):
        try:
            assert_valid_history(body["messages"])
        except AssertionError as exc:
            raise AssertionError(f"request {i} is not a valid history: {exc}") from exc


def user_texts(body: dict[str, Any]) -> list[str]:
    """The text blocks of the user messages of a request."""
    return [
        b["text"]
        for m in body["messages"]
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "text"
    ]


# --------------------------------------------------------------------------- abandoned streams

BREAK_AT = {"text": TextDelta, "tool_call": ToolCallEvent}


def two_turn_script(server: FakeAnthropic) -> None:
    server.enqueue(
        reply(text("Let me look around first. " * 4, chunk=8), tool_use("list_directory", {})),
        "The second answer.",
    )


@pytest.mark.parametrize("where", sorted(BREAK_AT))
def test_breaking_out_of_stream_with_a_reference_kept(fake_api, in_tmp, where):
    agent = Agent(workspace=in_tmp)
    two_turn_script(fake_api)
    stream = agent.stream("first question")
    for event in stream:
        if isinstance(event, BREAK_AT[where]):
            break
    # `stream` is still referenced: nothing closes it behind the session's back.
    result = agent.run("second question")  # no AgentBusyError, no wait for a timeout
    assert result.text == "The second answer."
    assert len(fake_api.requests) == 2
    assert user_texts(fake_api.last_body)[-1] == "second question"
    every_request_is_valid(fake_api)
    assert_valid_history(agent.messages)
    # The abandoned turn is over: it can never append to the conversation again.
    before = len(agent.messages)
    assert list(stream) == []
    assert len(agent.messages) == before and not agent.busy


@pytest.mark.parametrize("where", sorted(BREAK_AT))
def test_breaking_out_of_astream_with_a_reference_kept(fake_api, in_tmp, where):
    agent = Agent(workspace=in_tmp)
    two_turn_script(fake_api)

    async def scenario() -> tuple[Any, Any]:
        events = agent.astream("first question")
        async for event in events:
            if isinstance(event, BREAK_AT[where]):
                break
        # `events` is kept: the async generator is suspended, not closed.
        return events, await agent.arun("second question")

    events, result = asyncio.run(scenario())
    assert events is not None
    assert result.text == "The second answer."
    assert len(fake_api.requests) == 2
    assert user_texts(fake_api.last_body)[-1] == "second question"
    every_request_is_valid(fake_api)
    assert_valid_history(agent.messages)
    assert not agent.busy


def test_abandoned_stream_then_a_sync_run_after_astream(fake_api, in_tmp):
    """An astream abandoned by an event loop, then a plain run on the same thread."""
    agent = Agent(workspace=in_tmp)
    two_turn_script(fake_api)
    kept: list[Any] = []

    async def scenario() -> None:
        events = agent.astream("first question")
        kept.append(events)
        async for event in events:
            if isinstance(event, ToolCallEvent):
                break

    asyncio.run(scenario())
    result = agent.run("second question")
    assert result.text == "The second answer."
    every_request_is_valid(fake_api)


def test_a_turn_running_in_another_thread_still_says_busy(fake_api, in_tmp):
    """Only an abandoned stream (same thread, not running) is closed for a new turn;
    a turn that another thread is consuming is not taken over."""
    agent = Agent(workspace=in_tmp)
    fake_api.enqueue(reply(text("z" * 300, chunk=5), delay=0.01))
    started = threading.Event()

    def consume() -> None:
        for _ in agent.stream("slow one"):
            started.set()

    worker = threading.Thread(target=consume)
    worker.start()
    try:
        assert started.wait(WAIT)
        with pytest.raises(AgentBusyError):
            agent.run("meanwhile")
    finally:
        agent.stop()
        worker.join(WAIT)
    assert not worker.is_alive()
    every_request_is_valid(fake_api)


# --------------------------------------------------------------------------- SystemExit in a tool


@tool(read_only=True)
def count_rows() -> str:
    """Count the rows."""
    return "42 rows"


@tool
def shut_down() -> str:
    """Stop the program."""
    raise SystemExit(3)


@tool(read_only=True)
def exit_reading() -> str:
    """A read-only tool (run alongside other readers) that exits."""
    raise SystemExit(4)


def test_system_exit_from_a_tool_leaves_every_call_answered(fake_api, in_tmp):
    agent = Agent(tools=[count_rows, shut_down], workspace=in_tmp)
    fake_api.enqueue(
        reply(
            text("Counting, then stopping."), tool_use("count_rows", {}), tool_use("shut_down", {})
        )
    )
    with pytest.raises(SystemExit) as exited:
        agent.run("count and stop")
    assert exited.value.code == 3
    # Right away, before any later run could repair it:
    messages = agent.messages
    assert_valid_history(messages)
    results = tool_results(messages[-1])
    assert [b["tool_use_id"] for b in results] == [
        b["id"] for b in messages[-2]["content"] if b["type"] == "tool_use"
    ]
    assert result_text(results[0]) == "42 rows", "the call that ran keeps its real result"
    assert results[1]["is_error"]
    assert not agent.busy

    fake_api.enqueue("Still here.")
    assert agent.run("are you there?").text == "Still here."
    every_request_is_valid(fake_api)


def test_system_exit_from_a_concurrent_reader_while_streaming(fake_api, in_tmp):
    """The exit comes out of the thread pool of parallel read-only tools, and the
    consumer uses `stream()`."""
    agent = Agent(tools=[count_rows, exit_reading], workspace=in_tmp)
    fake_api.enqueue(reply(tool_use("count_rows", {}), tool_use("exit_reading", {})))
    seen: list[Any] = []
    with pytest.raises(SystemExit):
        for event in agent.stream("read twice"):
            seen.append(event)
    assert_valid_history(agent.messages)
    assert len(tool_results(agent.messages[-1])) == 2
    assert any(isinstance(e, ToolCallEvent) for e in seen)
    assert not agent.busy
    fake_api.enqueue("Recovered.")
    assert agent.run("again").text == "Recovered."
    every_request_is_valid(fake_api)


# --------------------------------------------------------------------------- InteractiveShell


@pytest.fixture
def shell(in_tmp, ipython: InteractiveShell) -> Iterator[InteractiveShell]:
    drop_session(ipython)
    ipython.extension_manager.load_extension("nbagent")
    yield ipython
    if "nbagent" in ipython.extension_manager.loaded:
        ipython.extension_manager.unload_extension("nbagent")
    drop_session(ipython)


@pytest.fixture
def panel(shell) -> Iterator[ChatPanel]:
    p = chat(shell)
    yield p
    p.stop()
    assert p.wait(WAIT), "the panel's turn did not end"


@pytest.mark.parametrize("question", ["what did you compute?", "is x > 3?", "why??"])
def test_a_one_line_question_keeps_its_question_mark(shell, fake_api, capsys, question):
    fake_api.enqueue("I computed 42.")
    result = shell.run_cell(f"%agent {question}")
    out = capsys.readouterr().out
    assert result.error_in_exec is None and result.error_before_exec is None
    assert "not found" not in out
    assert "I computed 42." in out
    assert user_texts(fake_api.last_body)[-1] == question


def test_a_one_line_prompt_takes_braces_as_a_cell_does(shell, fake_api, capsys):
    """`{{` and `}}` are literal braces in a `%%agent` cell; the one-line form (the
    question form included) reads them the same way, so IPython's own `{}`/`$`
    expansion of magic lines must not run first."""
    fake_api.enqueue("Literal braces.")
    shell.run_cell("%agent what is in {{braces}}?")
    out = capsys.readouterr().out
    assert "Literal braces." in out, out
    assert user_texts(fake_api.last_body)[-1] == "what is in {braces}?"


def test_help_on_names_still_works_after_load(shell, capsys):
    """The transformer only takes `%agent ...?` lines: `name?` is still IPython's help."""
    shell.user_ns["numbers_for_help"] = [1, 2]
    shell.run_cell("numbers_for_help?")
    assert "list" in capsys.readouterr().out


@tool(category="execute")
def slow_step() -> str:
    """A step that takes a moment."""
    slow_step.started.set()  # type: ignore[attr-defined]
    time.sleep(0.3)
    return "step done"


slow_step.started = threading.Event()  # type: ignore[attr-defined]


def start_slow_panel_turn(panel: ChatPanel, server: FakeAnthropic, during: str) -> None:
    """A panel turn, caught while its answer streams or while its tool runs."""
    if during == "stream":
        # ~1.2 s of stream; a turn that is not stopped would go on to run the tool.
        server.enqueue(reply(text("x" * 600, chunk=5), tool_use("list_variables", {}), delay=0.01))
        panel.send("write a lot")
        wait_until(lambda: "xxxxxxxxxx" in panel.history_html())
    else:
        slow_step.started.clear()  # type: ignore[attr-defined]
        panel.session.agent.add_tools([slow_step])
        server.enqueue(reply(text("One step."), tool_use("slow_step", {})))
        panel.send("take a step")
        assert slow_step.started.wait(WAIT)  # type: ignore[attr-defined]
    assert panel.running


RESETS = ("%agent reset", "agent.reset()", "%%agent --new")


@pytest.mark.parametrize("during", ["stream", "tool"])
@pytest.mark.parametrize("how", RESETS)
def test_reset_during_a_running_panel_turn(shell, fake_api, panel, capsys, how, during):
    start_slow_panel_turn(panel, fake_api, during)
    agent = get_session(shell).agent
    fake_api.enqueue("A fresh answer.")
    if how == "%%agent --new":
        shell.run_cell_magic("agent", "--new", "fresh start")
    else:
        if how == "%agent reset":
            shell.run_line_magic("agent", "reset")
            assert "Started a new conversation." in capsys.readouterr().out
        else:
            agent.reset()
        # The reset waited for the panel's turn: nothing of it is left.
        assert agent.messages == [], "the stopped turn wrote into the new conversation"
        shell.run_cell_magic("agent", "", "fresh start")
    assert panel.wait(WAIT)

    # The next run started at once, in a fresh conversation.
    out = capsys.readouterr().out
    assert "busy" not in out.lower() and "A fresh answer." in out
    assert fake_api.pending == 0
    body = fake_api.last_body
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert user_texts(body) == ["fresh start"]
    every_request_is_valid(fake_api)
    assert_valid_history(agent.messages)
    assert len(agent.messages) == 2

    # The panel goes on in the new conversation.
    fake_api.enqueue("The panel again.")
    panel.send("and from the panel")
    assert panel.wait(WAIT)
    assert "The panel again." in panel.history_html()
    every_request_is_valid(fake_api)
    assert_valid_history(agent.messages)


def test_config_between_panel_turns_holds_for_the_next_one(shell, fake_api, panel, in_tmp):
    fake_api.enqueue(
        reply(tool_use("create_file", {"file_path": "one.txt", "content": "1"})), "Made it."
    )
    panel.send("make one.txt")
    assert panel.wait(WAIT)
    assert (in_tmp / "one.txt").read_text() == "1"
    shell.run_line_magic("config", "NBAgent.permission_mode = 'read-only'")
    fake_api.enqueue(
        reply(tool_use("create_file", {"file_path": "two.txt", "content": "2"})), "Refused."
    )
    panel.send("make two.txt")
    assert panel.wait(WAIT)
    [refused] = tool_results(fake_api.last_body["messages"][-1])
    assert refused["is_error"] and "read-only" in result_text(refused)
    assert not (in_tmp / "two.txt").exists()
    shell.run_line_magic("config", "NBAgent.model = 'claude-sonnet-4-6'")
    fake_api.enqueue("Sonnet here.")
    panel.send("who are you?")
    assert panel.wait(WAIT)
    assert fake_api.last_body["model"] == "claude-sonnet-4-6"
