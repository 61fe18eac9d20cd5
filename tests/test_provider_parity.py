"""The agent-loop behaviours that matter, on both providers: the Anthropic Messages API
(tests/fake_anthropic.py) and an OpenAI-compatible endpoint (tests/fake_openai.py), each
through its real SDK. Both fakes take the same script, so every test runs the same
conversation on both and checks the same outcome: tools, errors, the max-turns final
answer, interrupts, manual mode and approvals.

Agents are built with `Agent(provider=...)`, so these tests need no `provider:model`
routing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from nbagent import Agent, tool
from nbagent.events import (
    ApprovalRequest,
    TextDelta,
    ThinkingDelta,
    ToolCallStart,
    ToolInputDelta,
    ToolResultEvent,
    TurnEnd,
    Usage,
)
from nbagent.models import cost_usd
from nbagent.providers.anthropic_api import AnthropicProvider
from nbagent.providers.openai_compat import OpenAICompatProvider
from tests.fake_anthropic import FAKE_API_KEY, FakeAnthropic, cut, error, reply, text, thinking
from tests.fake_anthropic import tool_use as call
from tests.fake_openai import FAKE_OPENAI_KEY, FakeOpenAI
from tests.helpers import assert_valid_history
from tests.sample_tools import add, explode, refuse_politely, save_note, written

pytestmark = pytest.mark.usefixtures("in_tmp")


@dataclass
class Backend:
    """One provider and its fake server, with what differs between their wire formats."""

    name: str
    server: Any
    model: str
    sdk: Any  # the SDK module whose typed errors the provider raises

    def provider(self, max_retries: int = 2) -> Any:
        if self.name == "anthropic":
            return AnthropicProvider(
                api_key=FAKE_API_KEY, base_url=self.server.url, max_retries=max_retries
            )
        return OpenAICompatProvider(
            api_key=FAKE_OPENAI_KEY, base_url=self.server.url, max_retries=max_retries
        )

    def agent(self, max_retries: int = 2, **kwargs: Any) -> Agent:
        kwargs.setdefault("tools", [add, save_note, explode, refuse_politely])
        kwargs.setdefault("model", self.model)
        return Agent(provider=self.provider(max_retries), **kwargs)

    def tool_results(self, request: int = -1) -> list[tuple[str, bool]]:
        """(text, is_error) of the tool results the request sent, in order."""
        body = self.server.requests[request]["body"]
        if self.name == "anthropic":
            last = body["messages"][-1]["content"]
            return [
                (_text(b["content"]), bool(b.get("is_error")))
                for b in last
                if b.get("type") == "tool_result"
            ]
        results = []
        for message in reversed(body["messages"]):
            if message["role"] != "tool":
                break
            results.append((message["content"], message["content"].startswith("Error")))
        return results[::-1]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if b.get("type") == "text")


@pytest.fixture(params=["anthropic", "openai"])
def backend(request) -> Iterator[Backend]:
    if request.param == "anthropic":
        with FakeAnthropic() as server:
            yield Backend("anthropic", server, "claude-opus-4-8", anthropic)
    else:
        with FakeOpenAI(api_key=FAKE_OPENAI_KEY) as server:
            yield Backend("openai", server, "gpt-5.1", openai)


@pytest.fixture(autouse=True)
def _clear_notes():
    written.clear()


# --------------------------------------------------------------------------- answers


def test_text_thinking_and_usage_with_cached_tokens(backend):
    backend.server.enqueue(
        reply(
            thinking("The user greets me."),
            text("Hello there, analyst!"),
            usage={"input_tokens": 1000, "output_tokens": 200, "cache_read_input_tokens": 3000},
        )
    )
    events = list(backend.agent().stream("hi"))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello there, analyst!"
    assert "".join(e.text for e in events if isinstance(e, ThinkingDelta)) == "The user greets me."
    usage = next(e for e in events if isinstance(e, Usage))
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) == (
        1000,
        200,
        3000,
    )
    assert usage.cost_usd == pytest.approx(cost_usd(backend.model, 1000, 200, 0, 3000))
    assert usage.cost_usd is not None and usage.cost_usd > 0
    assert events[-1] == TurnEnd("end_turn")


def test_several_tool_turns(backend):
    backend.server.enqueue(
        reply(text("Let me add."), call("add", {"a": 2, "b": 3})),
        reply(call("add", {"a": 5, "b": 10})),
        "The total is 15.",
    )
    agent = backend.agent()
    events = list(agent.stream("add things"))
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert [s.name for s in starts] == ["add", "add"]
    deltas = [e for e in events if isinstance(e, ToolInputDelta)]
    assert deltas and {d.id for d in deltas} == {s.id for s in starts}
    assert [e.output.content for e in events if isinstance(e, ToolResultEvent)] == ["5", "15"]
    assert agent.messages[-1]["content"][0]["text"] == "The total is 15."
    assert backend.tool_results(1) == [("5", False)]
    assert_valid_history(agent.messages)


def test_parallel_read_only_calls_run_concurrently_and_answer_together(backend):
    barrier = threading.Barrier(2, timeout=5)

    @tool(read_only=True)
    def wait_for_peer(label: str) -> str:
        """Waits until another call runs at the same time.

        Args:
            label: a label returned back
        """
        barrier.wait()
        return f"met:{label}"

    backend.server.enqueue(
        reply(call("wait_for_peer", {"label": "a"}), call("wait_for_peer", {"label": "b"})),
        "both met",
    )
    result = backend.agent(tools=[wait_for_peer]).run("go")
    assert result.text == "both met"
    assert backend.tool_results(1) == [("met:a", False), ("met:b", False)]


def test_bad_input_unknown_tool_and_exceptions_become_error_results(backend):
    backend.server.enqueue(
        reply(
            call("add", {"a": "two", "b": 1}),
            call("add", {"a": 1}),
            call("no_such_tool", {}),
            call("explode", {"reason": "test"}),
            call("refuse_politely", {"x": "that"}),
        ),
        "I see the errors.",
    )
    agent = backend.agent()
    assert agent.run("try").text == "I see the errors."
    results = backend.tool_results(1)
    assert all(is_error for _, is_error in results)
    texts = [t for t, _ in results]
    assert "valid integer" in texts[0]
    assert "missing required argument 'b'" in texts[1]
    assert "Unknown tool 'no_such_tool'" in texts[2]
    assert "RuntimeError: boom: test" in texts[3]
    assert texts[4] == "Error: cannot handle that"
    assert_valid_history(agent.messages)


def test_max_turns_ends_with_a_final_answer(backend):
    backend.server.enqueue(
        reply(call("add", {"a": 1, "b": 1})),
        reply(call("add", {"a": 2, "b": 2})),
        "Final answer from what I have.",
    )
    agent = backend.agent(max_turns=2)
    result = agent.run("loop forever")
    assert result.stop_reason == "max_turns"
    assert result.text == "Final answer from what I have."
    assert len(backend.server.requests) == 3
    assert backend.server.requests[-1]["body"]["tools"], "tools stay declared"
    assert_valid_history(agent.messages)


def test_max_tokens_closes_a_truncated_tool_call(backend):
    backend.server.enqueue(
        reply(text("Partial"), call("add", {"a": 1, "b": 2}), stop_reason="max_tokens"), "next"
    )
    agent = backend.agent()
    assert agent.run("long").stop_reason == "max_tokens"
    assert_valid_history(agent.messages)
    assert agent.run("go on").text == "next"
    assert_valid_history(agent.messages)


def test_refusal_is_reported(backend):
    backend.server.enqueue(reply(text("I can't help with that."), stop_reason="refusal"), "ok")
    agent = backend.agent()
    end = list(agent.stream("something bad"))[-1]
    assert end.stop_reason == "refusal" and "declined" in end.message
    assert agent.run("something fine").text == "ok"


# --------------------------------------------------------------------------- errors


def test_rate_limits_are_retried(backend):
    backend.server.enqueue(error(429, retry_after=0), "after retry")
    assert backend.agent().run("hi").text == "after retry"
    assert len(backend.server.requests) == 2


def test_exhausted_retries_raise_the_sdks_typed_error_and_history_stays_valid(backend):
    backend.server.enqueue(error(429, retry_after=0), error(429, retry_after=0), "later")
    agent = backend.agent(max_retries=1)
    with pytest.raises(backend.sdk.RateLimitError):
        agent.run("hi")
    assert agent.run("again").text == "later"
    assert_valid_history(agent.messages)


def test_a_cut_stream_keeps_the_partial_text_and_the_next_run_works(backend):
    backend.server.enqueue(
        reply(call("add", {"a": 1, "b": 2})),
        cut(reply(text("This answer will be cut off in the middle of it.", chunk=5)), 5),
        "Recovered.",
    )
    agent = backend.agent(max_retries=0)
    with pytest.raises(backend.sdk.APIConnectionError):
        agent.run("add")
    assert_valid_history(agent.messages)
    assert "[interrupted]" in agent.messages[-1]["content"][0]["text"]
    assert agent.run("again").text == "Recovered."
    assert_valid_history(agent.messages)


# --------------------------------------------------------------------------- interrupts


def test_keyboard_interrupt_in_a_tool_keeps_history_valid(backend):
    @tool
    def hang(x: str) -> str:
        """Simulates the user pressing stop.

        Args:
            x: ignored
        """
        raise KeyboardInterrupt

    backend.server.enqueue(reply(call("hang", {"x": "1"}), call("add", {"a": 1, "b": 1})), "fine")
    agent = backend.agent(tools=[hang, add])
    assert agent.run("go").stop_reason == "interrupted"
    assert_valid_history(agent.messages)
    assert agent.run("again").text == "fine"
    assert all(is_error and "interrupted" in t for t, is_error in backend.tool_results())


def test_a_stop_during_the_stream_ends_the_turn_cleanly(backend):
    backend.server.enqueue(reply(text("word " * 200, chunk=5)), "after the stop")
    agent = backend.agent()
    events, seen = [], 0
    for event in agent.stream("talk"):
        events.append(event)
        if isinstance(event, TextDelta):
            seen += 1
            if seen == 3:
                agent.stop()
    assert events[-1].stop_reason == "interrupted"
    assert_valid_history(agent.messages)
    assert agent.run("again").text == "after the stop"


# --------------------------------------------------------------------------- manual mode, approvals


def test_manual_tool_execution(backend):
    backend.server.enqueue(
        reply(call("add", {"a": 20, "b": 22}), call("save_note", {"note": "n"})), "42 it is"
    )
    agent = backend.agent()
    result = agent.run("add", execute_tools=False)
    assert result.stop_reason == "awaiting_tool_results"
    calls = result.pending_tool_calls
    assert [c.name for c in calls] == ["add", "save_note"] and written == []
    out = agent.execute(calls[0])
    final = agent.submit_tool_results({calls[0].id: out, calls[1].id: "skipped by caller"})
    assert final.text == "42 it is"
    assert backend.tool_results() == [("42", False), ("skipped by caller", False)]
    assert_valid_history(agent.messages)


def test_ask_mode_with_a_callable(backend):
    asked = []

    def approve(c):
        asked.append(c.name)
        return {"1": "deny", "2": "always"}[c.input["note"]]

    backend.server.enqueue(
        reply(call("add", {"a": 1, "b": 1}), call("save_note", {"note": "1"})),
        reply(call("save_note", {"note": "2"})),
        reply(call("save_note", {"note": "3"})),
        "done",
    )
    agent = backend.agent(permission_mode="ask", approve=approve)
    events = list(agent.stream("notes"))
    assert asked == ["save_note", "save_note"] and written == ["2", "3"]
    assert sum(isinstance(e, ApprovalRequest) for e in events) == 2
    assert backend.tool_results(1)[1][1], "the denied call is an error result"
    assert_valid_history(agent.messages)


def test_ask_mode_suspends_and_resumes(backend):
    backend.server.enqueue(
        reply(call("save_note", {"note": "a"})), reply(call("save_note", {"note": "b"})), "ok"
    )
    agent = backend.agent(permission_mode="ask")
    result = agent.run("save")
    assert result.stop_reason == "awaiting_approval" and result.pending_approval.name == "save_note"
    assert agent.resume("allow").stop_reason == "awaiting_approval" and written == ["a"]
    assert agent.resume("deny").text == "ok" and written == ["a"]
    assert_valid_history(agent.messages)


# --------------------------------------------------------------------------- the same events


def _shape(events: list[Any]) -> list[str]:
    """Event kinds in order, consecutive repeats folded (chunking differs per wire format)."""
    kinds: list[str] = []
    for e in events:
        if not kinds or kinds[-1] != e.type:
            kinds.append(e.type)
    return kinds


def test_both_providers_yield_the_same_events_and_history_for_one_script():
    script = (
        reply(text("Adding."), call("add", {"a": 2, "b": 3}), call("add", {"a": 1, "b": 1})),
        "5 and 2.",
    )
    shapes, histories = [], []
    for server, make in (
        (FakeAnthropic(), lambda s: AnthropicProvider(api_key=FAKE_API_KEY, base_url=s.url)),
        (FakeOpenAI(), lambda s: OpenAICompatProvider(api_key="k", base_url=s.url)),
    ):
        with server:
            server.enqueue(*script)
            agent = Agent(tools=[add], model="claude-test-model", provider=make(server))
            shapes.append(_shape(list(agent.stream("add"))))
            histories.append(_without_ids(agent.messages))
    assert shapes[0] == shapes[1]
    assert histories[0] == histories[1]


def _without_ids(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [
                {k: v for k, v in b.items() if k not in ("id", "tool_use_id")} for b in content
            ]
        out.append({**m, "content": content})
    return out
