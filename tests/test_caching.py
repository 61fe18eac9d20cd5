"""Caching that holds over long sessions (issue 10).

Breakpoints sit on the moving end of the conversation and on the ends of the previous
requests, so a round of 12 parallel tool calls (more blocks than the API's 20-block
lookback) and the forced final answer still read the cached conversation; a compaction
keeps the tools and system cache. Checked against the fake Messages API, which applies
the per-model minimum, the lookback and the 4-breakpoint limit.
"""

from __future__ import annotations

from typing import Any

import pytest

from nbagent import Agent, tool
from nbagent.events import Usage
from nbagent.history import request_ends, with_cache_breakpoint, with_cache_breakpoints
from tests.fake_anthropic import FakeAnthropic, prompt_tokens, reply, text, tool_use
from tests.helpers import assert_valid_history

pytestmark = pytest.mark.usefixtures("in_tmp")

MODEL = "claude-sonnet-4-6"  # minimum cacheable prefix: 2,048 tokens
SYSTEM = "You are a careful data analyst working in a Jupyter notebook. " * 200  # ~3,100 tokens
EPHEMERAL = {"type": "ephemeral"}


@tool(read_only=True)
def column_stats(column: str) -> str:
    """Summary statistics of one column.

    Args:
        column: the column name
    """
    return f"{column}: mean 2.42, std 0.31, min 1.0, max 4.7, n 1000"


@tool(read_only=True)
def zeta(x: int) -> str:
    """A tool whose name sorts last.

    Args:
        x: anything
    """
    return str(x)


def marks(message: dict[str, Any]) -> list[int]:
    content = message["content"]
    if isinstance(content, str):
        return []
    return [i for i, b in enumerate(content) if b.get("cache_control") == EPHEMERAL]


def tool_round(i: int, calls: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hm", "signature": "s"},
                *[
                    {"type": "tool_use", "id": f"t{i}-{c}", "name": "f", "input": {}}
                    for c in range(calls)
                ],
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": f"t{i}-{c}", "content": "r"}
                for c in range(calls)
            ],
        },
    ]


# --------------------------------------------------------------------------- placement


def test_breakpoints_on_this_and_the_two_previous_request_ends():
    history = [{"role": "user", "content": "question"}, *tool_round(1), *tool_round(2, calls=12)]
    marked = with_cache_breakpoints(history)
    assert request_ends(history, 3) == [4, 2, 0]
    assert marks(marked[4]) == [11]  # the moving end: the last tool result
    assert marks(marked[2]) == [0]  # the previous request's end, 25 blocks back
    assert marked[0]["content"] == [
        {"type": "text", "text": "question", "cache_control": EPHEMERAL}
    ]
    assert sum(len(marks(m)) for m in marked) == 3
    # Only the marked messages are copies; the stored history is untouched.
    assert marked[1] is history[1] and marked[3] is history[3]
    assert all(not marks(m) for m in history)


def test_a_paused_turn_marks_the_assistant_message_and_skips_thinking():
    history = [
        {"role": "user", "content": [{"type": "text", "text": "go"}, {"type": "text", "text": ""}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "part"},
                {"type": "thinking", "thinking": "x", "signature": "s"},
            ],
        },
    ]
    marked = with_cache_breakpoints(history)
    assert marks(marked[1]) == [0]  # the thinking block cannot carry a breakpoint
    assert marks(marked[0]) == [0]  # an empty text block cannot either


def test_the_single_breakpoint_function_is_unchanged():
    history = [{"role": "user", "content": "question"}, *tool_round(1)]
    marked = with_cache_breakpoint(history)
    assert [len(marks(m)) for m in marked] == [0, 0, 1]


# --------------------------------------------------------------------------- against the fake


def usages(agent: Agent, prompt: str) -> list[Usage]:
    return [e for e in agent.stream(prompt) if isinstance(e, Usage)]


def requests(server: FakeAnthropic) -> list[dict[str, Any]]:
    return [r["body"] for r in server.requests if r["path"] == "/v1/messages"]


def test_a_round_of_12_parallel_calls_keeps_the_cached_conversation(fake_api):
    fake_api.enqueue(
        reply(tool_use("column_stats", {"column": "a"})),
        "One column done.",
        reply(
            text("All twelve at once."),
            *[tool_use("column_stats", {"column": f"c{i}"}) for i in range(12)],
        ),
        "Twelve columns done.",
    )
    agent = Agent(model=MODEL, tools=[column_stats], system=SYSTEM)
    usages(agent, "describe column a")
    before_round = requests(fake_api)[-1]
    after = usages(agent, "now twelve columns")
    sent = requests(fake_api)
    # The request after the round reads all of the request before it from the cache.
    assert after[-1].cache_read_input_tokens == prompt_tokens(sent[-2])
    assert after[0].cache_read_input_tokens == prompt_tokens(before_round)
    for body in sent:
        marked = sum(len(marks(m)) for m in body["messages"])
        assert marked <= 3 and body["system"][-1]["cache_control"] == EPHEMERAL
    assert_valid_history(agent.messages)


def test_without_the_previous_end_the_round_would_miss(fake_api):
    """The fake's lookback is what the product relies on: one moving breakpoint misses."""
    history = [{"role": "user", "content": "now twelve columns"}, *tool_round(1, calls=12)]
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "system": [{"type": "text", "text": SYSTEM, "cache_control": EPHEMERAL}],
    }
    import anthropic

    client = anthropic.Anthropic(base_url=fake_api.url, api_key="k", max_retries=0)
    fake_api.enqueue("first", "one breakpoint", "three breakpoints")
    client.messages.create(**body, messages=with_cache_breakpoint(history[:1]))
    one = client.messages.create(**body, messages=with_cache_breakpoint(history)).usage
    three = client.messages.create(**body, messages=with_cache_breakpoints(history)).usage
    system_only = prompt_tokens({"system": SYSTEM})
    assert one.cache_read_input_tokens == system_only
    assert three.cache_read_input_tokens == system_only + prompt_tokens({"messages": history[:1]})


def test_the_final_answer_reads_the_cached_conversation(fake_api):
    fake_api.enqueue(
        reply(tool_use("column_stats", {"column": "a"})),
        reply(tool_use("column_stats", {"column": "b"})),
        "From what I have: the mean is 2.42.",
    )
    agent = Agent(model=MODEL, tools=[column_stats], system=SYSTEM, max_turns=2)
    used = usages(agent, "describe everything")
    sent = requests(fake_api)
    final = sent[-1]
    assert "tool_choice" not in final
    assert used[-1].cache_read_input_tokens == prompt_tokens(sent[-2])
    assert agent.messages[-1]["content"][0]["text"].startswith("From what I have")


def test_tools_and_system_stay_sorted_and_stable_between_turns(fake_api):
    fake_api.enqueue("one", "two")
    agent = Agent(model=MODEL, tools=[zeta, column_stats], system=SYSTEM)
    agent.run("first")
    agent.run("second")
    first, second = requests(fake_api)
    assert [t["name"] for t in first["tools"]] == ["column_stats", "zeta"]
    assert first["tools"] == second["tools"] and first["system"] == second["system"]


def test_a_compaction_keeps_the_tools_and_system_cache(fake_api):
    from nbagent.context import compact_now

    fake_api.responder = lambda body: reply(text("Summary: columns a to c were described."))
    agent = Agent(model=MODEL, tools=[column_stats], system=SYSTEM)
    for column in "abc":
        agent.run(f"describe column {column}")
    turn, _ = agent.session._new_turn(None, None)  # type: ignore[attr-defined]
    assert compact_now(turn.context) is not None
    after = usages(agent, "and column d?")
    fixed = prompt_tokens({"system": SYSTEM, "tools": requests(fake_api)[-1]["tools"]})
    assert after[0].cache_read_input_tokens == fixed  # tools and system: read
    assert after[0].cache_creation_input_tokens > 0  # the new prefix: written once
    again = usages(agent, "and column e?")
    assert again[0].cache_read_input_tokens > fixed  # ... and read from then on
