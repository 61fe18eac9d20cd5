"""The agent loop against the fake Messages API, through the real SDK."""

from __future__ import annotations

import asyncio
import threading

import anthropic
import pytest

from nbagent import Agent, tool
from nbagent.events import (
    ApprovalRequest,
    ErrorEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallEvent,
    ToolCallStart,
    ToolInputDelta,
    ToolResultEvent,
    TurnEnd,
    Usage,
)
from tests.fake_anthropic import cut, error, reply, text, thinking, tool_use
from tests.helpers import assert_valid_history, result_text, tool_results
from tests.sample_tools import add, explode, refuse_politely, save_note, written

pytestmark = pytest.mark.usefixtures("in_tmp")


def make_agent(**kwargs) -> Agent:
    kwargs.setdefault("tools", [add, save_note, explode, refuse_politely])
    kwargs.setdefault("model", "claude-opus-4-8")
    return Agent(max_retries=kwargs.pop("max_retries", 2), **kwargs)


@pytest.fixture(autouse=True)
def _clear_notes():
    written.clear()


def test_plain_answer_streams_and_reports_usage(fake_api):
    fake_api.enqueue(
        reply(
            thinking("The user greets me."),
            text("Hello there, analyst!"),
            usage={"input_tokens": 1000, "output_tokens": 200, "cache_read_input_tokens": 3000},
        )
    )
    agent = make_agent()
    events = list(agent.stream("hi"))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello there, analyst!"
    assert "".join(e.text for e in events if isinstance(e, ThinkingDelta)) == "The user greets me."
    usage = [e for e in events if isinstance(e, Usage)]
    assert usage[0].input_tokens == 1000 and usage[0].cache_read_input_tokens == 3000
    # opus 4.8: $5 in, $25 out, cache reads at 0.1x
    assert usage[0].cost_usd == pytest.approx((1000 * 5 + 200 * 25 + 3000 * 0.5) / 1e6)
    assert isinstance(events[-1], TurnEnd) and events[-1].stop_reason == "end_turn"

    body = fake_api.last_body
    assert body["stream"] is True
    assert body["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    # sorted by name, so the prompt cache holds whatever order tools were added in
    assert [t["name"] for t in body["tools"]] == ["add", "explode", "refuse_politely", "save_note"]
    # the stored history carries no cache markers, and keeps the thinking signature
    assert "cache_control" not in agent.messages[0]["content"][-1]
    assert agent.messages[1]["content"][0]["signature"].startswith("sig-")


def test_run_result_and_conversation_persists_until_reset(fake_api):
    fake_api.enqueue("First answer.", "Second answer.", "Fresh start.")
    agent = make_agent()
    r1 = agent.run("one")
    assert r1.text == "First answer." and r1.stop_reason == "end_turn"
    assert r1.cost_usd > 0 and r1.tool_calls == []
    agent.run("two")
    assert len(fake_api.last_body["messages"]) == 3
    agent.reset()
    agent.run("three")
    assert len(fake_api.last_body["messages"]) == 1
    assert agent.usage.output_tokens > 0


def test_several_tool_turns(fake_api):
    fake_api.enqueue(
        reply(text("Let me add."), tool_use("add", {"a": 2, "b": 3})),
        reply(tool_use("add", {"a": 5, "b": 10})),
        "The total is 15.",
    )
    agent = make_agent()
    events = list(agent.stream("add things"))
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    deltas = [e for e in events if isinstance(e, ToolInputDelta)]
    assert [s.name for s in starts] == ["add", "add"]
    assert deltas and all(d.id == starts[0].id or d.id == starts[1].id for d in deltas)
    results = [e for e in events if isinstance(e, ToolResultEvent)]
    assert [r.output.content for r in results] == ["5", "15"]
    assert agent.messages[-1]["content"][0]["text"] == "The total is 15."
    assert_valid_history(agent.messages)
    second_request = fake_api.requests[1]["body"]
    assert result_text(tool_results(second_request["messages"][-1])[0]) == "5"


def test_parallel_read_only_calls_run_concurrently_and_answer_together(fake_api):
    barrier = threading.Barrier(2, timeout=5)

    @tool(read_only=True)
    def wait_for_peer(label: str) -> str:
        """Waits until another call runs at the same time.

        Args:
            label: a label returned back
        """
        barrier.wait()  # raises BrokenBarrierError if the calls ran one after the other
        return f"met:{label}"

    fake_api.enqueue(
        reply(tool_use("wait_for_peer", {"label": "a"}), tool_use("wait_for_peer", {"label": "b"})),
        "both met",
    )
    agent = make_agent(tools=[wait_for_peer])
    result = agent.run("go")
    assert result.text == "both met"
    answer = fake_api.requests[1]["body"]["messages"][-1]
    blocks = tool_results(answer)
    assert [result_text(b) for b in blocks] == ["met:a", "met:b"]
    assert not any(b.get("is_error") for b in blocks)


def test_bad_input_unknown_tool_and_exceptions_become_error_results(fake_api):
    fake_api.enqueue(
        reply(
            tool_use("add", {"a": "two", "b": 1}),
            tool_use("add", {"a": 1}),
            tool_use("add", {"a": 1, "b": 2, "c": 3}),
            tool_use("no_such_tool", {}),
            tool_use("explode", {"reason": "test"}),
            tool_use("refuse_politely", {"x": "that"}),
        ),
        "I see the errors.",
    )
    agent = make_agent()
    result = agent.run("try")
    assert result.text == "I see the errors."
    blocks = tool_results(fake_api.requests[1]["body"]["messages"][-1])
    assert all(b["is_error"] for b in blocks)
    texts = [result_text(b) for b in blocks]
    assert "'a'" in texts[0] and "valid integer" in texts[0]
    assert "missing required argument 'b'" in texts[1]
    assert "unexpected argument 'c'" in texts[2]
    assert "Unknown tool 'no_such_tool'" in texts[3] and "add" in texts[3]
    assert "RuntimeError: boom: test" in texts[4]
    assert texts[5] == "Error: cannot handle that"
    assert_valid_history(agent.messages)


def test_max_turns_asks_for_a_final_answer_without_tools(fake_api):
    fake_api.enqueue(
        reply(tool_use("add", {"a": 1, "b": 1})),
        reply(tool_use("add", {"a": 2, "b": 2})),
        "Final answer from what I have.",
    )
    agent = make_agent(max_turns=2)
    result = agent.run("loop forever")
    assert result.stop_reason == "max_turns"
    assert result.text == "Final answer from what I have."
    last = fake_api.requests[-1]["body"]
    # Asked in text, with tool_choice unchanged: changing it would drop the message cache.
    assert "tool_choice" not in last
    assert "reached its limit of 2 tool rounds" in str(last["messages"][-1]["content"])
    assert last["tools"], "tools stay declared while the history holds tool calls"
    assert_valid_history(agent.messages)


def test_max_turns_from_environment(fake_api, monkeypatch):
    monkeypatch.setenv("MAX_TURNS", "1")
    fake_api.enqueue(reply(tool_use("add", {"a": 1, "b": 1})), "done")
    assert make_agent().run("x").stop_reason == "max_turns"


def test_refusal_is_reported_and_history_stays_valid(fake_api):
    fake_api.enqueue(reply(stop_reason="refusal"), "ok now")
    agent = make_agent()
    events = list(agent.stream("something bad"))
    end = events[-1]
    assert end.stop_reason == "refusal" and "declined" in end.message
    assert agent.run("something fine").text == "ok now"
    assert_valid_history(agent.messages)


def test_max_tokens_says_so_and_closes_a_truncated_tool_call(fake_api):
    fake_api.enqueue(
        reply(text("Partial"), tool_use("add", {"a": 1, "b": 2}), stop_reason="max_tokens"), "next"
    )
    agent = make_agent()
    result = agent.run("long")
    assert result.stop_reason == "max_tokens"
    end = agent.messages[-1]
    assert tool_results(end) and tool_results(end)[0]["is_error"]
    assert_valid_history(agent.messages)
    assert agent.run("go on").text == "next"


@pytest.mark.parametrize("status", [429, 529])
def test_retries_on_rate_limit_and_overload(fake_api, status):
    fake_api.enqueue(error(status, retry_after=0), "after retry")
    result = make_agent().run("hi")
    assert result.text == "after retry"
    assert len(fake_api.requests) == 2


def test_retries_exhausted_raise_typed_error_with_valid_history(fake_api):
    fake_api.enqueue(error(529, retry_after=0), error(529, retry_after=0), "later")
    agent = make_agent(max_retries=1)
    events = list(agent.stream("hi"))
    assert isinstance(events[-2], ErrorEvent) and "overloaded" in events[-2].message
    assert events[-1].stop_reason == "error"
    assert agent.run("again").text == "later"
    assert_valid_history(agent.messages)


def test_dropped_stream_gives_clear_error_and_next_run_works(fake_api):
    fake_api.enqueue(
        reply(tool_use("add", {"a": 1, "b": 2})),
        cut(reply(text("This answer will be cut off in the middle of it.")), after_events=5),
        "Recovered.",
    )
    agent = make_agent(max_retries=0)
    with pytest.raises(anthropic.APIConnectionError):
        agent.run("add")
    assert_valid_history(agent.messages)
    # the partial text survives, marked
    assert agent.messages[-1]["role"] == "assistant"
    assert "[interrupted]" in agent.messages[-1]["content"][0]["text"]
    assert agent.run("again").text == "Recovered."
    assert_valid_history(agent.messages)


def test_keyboard_interrupt_in_a_tool_keeps_history_valid(fake_api):
    @tool
    def hang(x: str) -> str:
        """Simulates the user pressing stop.

        Args:
            x: ignored
        """
        raise KeyboardInterrupt

    fake_api.enqueue(reply(tool_use("hang", {"x": "1"}), tool_use("add", {"a": 1, "b": 1})), "fine")
    agent = make_agent(tools=[hang, add])
    result = agent.run("go")
    assert result.stop_reason == "interrupted"
    assert_valid_history(agent.messages)
    blocks = tool_results(agent.messages[-1])
    assert all(b["is_error"] and "interrupted" in result_text(b) for b in blocks)
    assert agent.run("again").text == "fine"


def test_manual_tool_execution(fake_api):
    fake_api.enqueue(
        reply(tool_use("add", {"a": 20, "b": 22}), tool_use("save_note", {"note": "n"})), "42 it is"
    )
    agent = make_agent()
    result = agent.run("add", execute_tools=False)
    assert result.stop_reason == "awaiting_tool_results"
    calls = result.pending_tool_calls
    assert [c.name for c in calls] == ["add", "save_note"]
    assert written == [], "nothing runs until the caller says so"
    out = agent.execute(calls[0])
    assert out.content == "42"
    final = agent.submit_tool_results({calls[0].id: out, calls[1].id: "skipped by caller"})
    assert final.text == "42 it is"
    blocks = tool_results(fake_api.last_body["messages"][-1])
    assert [result_text(b) for b in blocks] == ["42", "skipped by caller"]
    assert_valid_history(agent.messages)


def test_ask_mode_with_callable(fake_api):
    asked = []

    def approve(call):
        asked.append(call.name)
        return {"1": "deny", "2": "always"}[call.input["note"]]

    fake_api.enqueue(
        reply(tool_use("add", {"a": 1, "b": 1}), tool_use("save_note", {"note": "1"})),
        reply(tool_use("save_note", {"note": "2"})),
        reply(tool_use("save_note", {"note": "3"})),
        "done",
    )
    agent = make_agent(permission_mode="ask", approve=approve)
    events = list(agent.stream("notes"))
    assert asked == ["save_note", "save_note"], "read tools never ask; 'always' is remembered"
    assert written == ["2", "3"]
    denied = [e for e in events if isinstance(e, ToolResultEvent) and e.output.is_error]
    assert len(denied) == 1 and "did not allow" in denied[0].output.text()
    assert sum(isinstance(e, ApprovalRequest) for e in events) == 2
    assert_valid_history(agent.messages)


def test_ask_mode_suspends_and_resumes(fake_api):
    fake_api.enqueue(
        reply(tool_use("save_note", {"note": "a"})),
        reply(tool_use("save_note", {"note": "b"})),
        "ok",
    )
    agent = make_agent(permission_mode="ask")
    result = agent.run("save")
    assert result.stop_reason == "awaiting_approval"
    assert result.pending_approval.name == "save_note"
    assert agent.pending_approval == result.pending_approval
    assert written == []
    result = agent.resume("allow")
    assert written == ["a"]
    assert result.stop_reason == "awaiting_approval"
    result = agent.resume("deny")
    assert result.text == "ok" and written == ["a"]
    assert_valid_history(agent.messages)


def test_new_prompt_while_suspended_closes_the_pending_call(fake_api):
    fake_api.enqueue(reply(tool_use("save_note", {"note": "a"})), "moved on")
    agent = make_agent(permission_mode="ask")
    assert agent.run("save").stop_reason == "awaiting_approval"
    assert agent.run("never mind").text == "moved on"
    assert_valid_history(agent.messages)
    assert written == []


def test_read_only_mode_refuses_everything_but_reads(fake_api):
    fake_api.enqueue(
        reply(tool_use("add", {"a": 1, "b": 1}), tool_use("save_note", {"note": "x"})), "ok"
    )
    agent = make_agent(permission_mode="read-only")
    agent.run("try")
    blocks = tool_results(fake_api.last_body["messages"][-1])
    assert result_text(blocks[0]) == "2" and not blocks[0].get("is_error")
    assert blocks[1]["is_error"] and "read-only" in result_text(blocks[1])
    assert written == []


def test_missing_key_is_one_clear_line(in_tmp):
    agent = make_agent()
    events = list(agent.stream("hi"))
    error_event = next(e for e in events if isinstance(e, ErrorEvent))
    assert error_event.message.startswith("ANTHROPIC_API_KEY is not set")
    assert "\n" not in error_event.message and ".env" in error_event.message
    assert events[-1].stop_reason == "error"
    from nbagent.errors import ConfigError

    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        make_agent().run("hi")


def test_dotenv_and_system_prompt_file_are_read_not_written(in_tmp, monkeypatch):
    from tests.fake_anthropic import FakeAnthropic

    with FakeAnthropic() as server:
        server.enqueue("from dotenv")
        monkeypatch.delenv("ANTHROPIC_BASE_URL")
        (in_tmp / ".env").write_text(
            f"ANTHROPIC_API_KEY=sk-ant-from-dotenv\nANTHROPIC_BASE_URL={server.url}\n"
            "ANTHROPIC_MODEL_NAME=claude-sonnet-4-6\n"
        )
        prompt = in_tmp / "system_prompt.txt"
        prompt.write_text("You are a terse statistician.\n")
        before = prompt.stat().st_mtime_ns
        agent = Agent(tools=[add])
        assert agent.run("hi").text == "from dotenv"
        request = server.requests[0]
        headers = request["headers"]
        assert "sk-ant-from-dotenv" in (
            headers.get("x-api-key", "") + headers.get("authorization", "")
        )
        assert request["body"]["model"] == "claude-sonnet-4-6"
        assert request["body"]["system"][0]["text"] == "You are a terse statistician."
        assert prompt.stat().st_mtime_ns == before
        import os

        assert "ANTHROPIC_API_KEY" not in os.environ, ".env values stay out of os.environ"


def test_environment_beats_dotenv_and_system_prompt_file_setting(fake_api, in_tmp, monkeypatch):
    (in_tmp / ".env").write_text("ANTHROPIC_MODEL_NAME=claude-haiku-4-5\n")
    monkeypatch.setenv("ANTHROPIC_MODEL_NAME", "claude-sonnet-4-6")
    (in_tmp / "custom.txt").write_text("Custom prompt.")
    monkeypatch.setenv("SYSTEM_PROMPT_FILE", "custom.txt")
    fake_api.enqueue("ok")
    Agent(tools=[add]).run("hi")
    assert fake_api.last_body["model"] == "claude-sonnet-4-6"
    assert fake_api.last_body["system"][0]["text"] == "Custom prompt."
    # an explicit argument wins over everything
    fake_api.enqueue("ok")
    Agent(tools=[add], model="claude-haiku-4-5", system="Explicit.").run("hi")
    assert fake_api.last_body["model"] == "claude-haiku-4-5"
    assert "thinking" not in fake_api.last_body, "haiku 4.5 does not take adaptive thinking"


def test_thinking_off_and_effort(fake_api):
    fake_api.enqueue("ok")
    Agent(tools=[add], thinking="off", effort="low").run("hi")
    assert "thinking" not in fake_api.last_body
    assert fake_api.last_body["output_config"] == {"effort": "low"}


def test_async_api(fake_api):
    fake_api.enqueue(reply(tool_use("add", {"a": 1, "b": 2})), "three", "again")
    agent = make_agent()

    async def main():
        events = [e async for e in agent.astream("add")]
        result = await agent.arun("more")
        return events, result

    events, result = asyncio.run(main())
    assert any(isinstance(e, ToolResultEvent) and e.output.content == "3" for e in events)
    assert result.text == "again"


def test_tool_decorator_rules():
    with pytest.raises(ValueError, match="docstring"):

        @tool
        def undocumented(x: int) -> str:
            return ""

    with pytest.raises(ValueError, match="missing: y"):

        @tool
        def half(x: int, y: int) -> str:
            """Half documented.

            Args:
                x: documented
            """
            return ""

    assert add.read_only and add.category == "read"
    assert save_note.category == "write" and not save_note.read_only
    assert explode.category == "execute"
    schema = add.to_param()["input_schema"]
    assert schema["required"] == ["a", "b"] and schema["properties"]["a"]["type"] == "integer"
    assert schema["properties"]["a"]["description"] == "first number"


def test_pause_turn_sends_the_history_back_to_continue(fake_api):
    fake_api.enqueue(reply(text("Searching..."), stop_reason="pause_turn"), "Found it.")
    agent = make_agent()
    result = agent.run("look it up")
    assert result.text == "Found it." and result.stop_reason == "end_turn"
    second = fake_api.requests[1]["body"]["messages"]
    assert second[-1]["role"] == "assistant" and second[-1]["content"][0]["text"] == "Searching..."


def test_long_tool_output_is_clipped_with_a_notice(fake_api):
    @tool(read_only=True)
    def dump(n: int) -> str:
        """Produce a lot of output.

        Args:
            n: characters
        """
        return "x" * n

    fake_api.enqueue(reply(tool_use("dump", {"n": 50_000})), "ok")
    Agent(tools=[dump], max_tool_output_chars=1000).run("dump")
    sent = result_text(tool_results(fake_api.last_body["messages"][-1])[0])
    assert len(sent) < 1200
    assert "output clipped" in sent and "50,000" in sent


def test_each_tool_call_is_logged_in_the_seed_shape(fake_api, caplog):
    fake_api.enqueue(reply(tool_use("save_note", {"note": "a" * 200})), "ok")
    with caplog.at_level("INFO", logger="nbagent.tools"):
        make_agent().run("note")
    line = next(r.getMessage() for r in caplog.records if r.name == "nbagent.tools")
    assert line.startswith("[TOOL][save_note] note=")
    assert line.endswith("...") and len(line) < 120, "long values are shortened"


def test_a_stopped_stream_still_counts_its_usage(fake_api):
    fake_api.enqueue(
        reply(text("word " * 200, chunk=5), usage={"input_tokens": 1000, "output_tokens": 300})
    )
    agent = make_agent()
    seen = 0
    events = []
    for event in agent.stream("talk"):
        events.append(event)
        if isinstance(event, TextDelta):
            seen += 1
            if seen == 3:
                agent.stop()
    assert events[-1].stop_reason == "interrupted"
    usage = [e for e in events if isinstance(e, Usage)]
    assert usage and usage[0].input_tokens == 1000, "input tokens of the cut response are counted"
    assert agent.usage.input_tokens == 1000 and agent.usage.cost_usd > 0
    assert_valid_history(agent.messages)


def test_an_interrupt_does_not_wait_for_a_blocked_read_only_tool(fake_api):
    """Two read-only calls run together and one blocks (a read that hangs). Ctrl-C ends
    the turn at once: the pool does not wait for the blocked thread to finish."""
    import os
    import signal

    release, finished = threading.Event(), threading.Event()

    @tool(read_only=True)
    def slow_read(x: str) -> str:
        """Blocks until released.

        Args:
            x: anything
        """
        release.wait(60)
        finished.set()
        return "late"

    fake_api.enqueue(reply(tool_use("slow_read", {"x": "a"}), tool_use("add", {"a": 1, "b": 2})))
    agent = make_agent(tools=[slow_read, add])
    # A real SIGINT, as the kernel's stop button sends: it wakes the blocked wait.
    ctrl_c = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    try:
        events = []
        for event in agent.stream("read"):
            events.append(event)
            if isinstance(event, ToolCallEvent) and not ctrl_c.is_alive():
                ctrl_c.start()
        assert isinstance(events[-1], TurnEnd) and events[-1].stop_reason == "interrupted"
        assert not finished.is_set(), "the turn waited for the blocked tool"
        assert_valid_history(agent.messages)
    finally:
        release.set()
        ctrl_c.cancel()
