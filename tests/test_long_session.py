"""A 40-turn analysis session in a small context window never dead-ends (issue 10).

Scripted against the fake Messages API with tool rounds (one of 12 parallel calls):
- on a model with server-side compaction, the API compacts, its compaction blocks
  come back verbatim, and no request is refused;
- on a model without it, nbagent compacts on the client, and no request is refused;
- when nbagent misjudges the window, the API's `prompt is too long` is answered with
  one compaction and one retry, and the session goes on.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import nbagent.context.server_compaction as server_compaction
from nbagent import Agent, tool
from nbagent.context.client_compaction import SUMMARY_PROMPT
from nbagent.events import Notice, TurnEnd
from tests.fake_anthropic import FakeAnthropic, prompt_tokens, reply, text, tool_use
from tests.helpers import assert_valid_history

pytestmark = pytest.mark.usefixtures("in_tmp")

TURNS = 40
PARALLEL_TURN = 17  # the turn with a round of 12 parallel calls


@tool(read_only=True)
def load_rows(block: int) -> str:
    """Load a block of rows of the dataset.

    Args:
        block: which block
    """
    return f"block {block}: " + "3.14159 2.71828 1.41421 " * 150  # about 900 tokens


def the_window_is(monkeypatch: pytest.MonkeyPatch, window: int) -> None:
    """nbagent sees `window` as the model's context window."""
    real = server_compaction.model_info
    monkeypatch.setattr(
        server_compaction,
        "model_info",
        lambda model: dataclasses.replace(real(model), context_window=window),
    )


def is_summary_request(body: dict[str, Any]) -> bool:
    content = body["messages"][-1]["content"]
    return isinstance(content, list) and content[-1].get("text") == SUMMARY_PROMPT


def analyst(calls: int) -> Any:
    """Plays the model: each prompt gets a round of `calls` tool calls (12 on one turn),
    the results get a written answer, and a summary request gets a summary."""

    def respond(body: dict[str, Any]) -> Any:
        if is_summary_request(body):
            return reply(text("## Summary\nBlocks of rows were loaded; their mean is 2.42."))
        content = body["messages"][-1]["content"]
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        if any(b.get("type") == "tool_result" for b in blocks):
            return reply(text("The rows are consistent; the running mean is 2.42. " * 20))
        prompt = next(b["text"] for b in blocks if b.get("type") == "text")
        n = 12 if prompt.startswith(f"turn {PARALLEL_TURN}:") else calls
        return reply(
            text("Loading the rows."), *[tool_use("load_rows", {"block": i}) for i in range(n)]
        )

    return respond


def session(agent: Agent, turns: int = TURNS) -> list[Notice]:
    notices: list[Notice] = []
    for turn in range(turns):
        events = list(agent.stream(f"turn {turn}: load the next blocks and summarise them"))
        end = events[-1]
        assert isinstance(end, TurnEnd) and end.stop_reason == "end_turn", (turn, end)
        notices += [e for e in events if isinstance(e, Notice)]
    return notices


def sent(server: FakeAnthropic) -> list[dict[str, Any]]:
    return [r["body"] for r in server.requests if r["path"] == "/v1/messages"]


def test_server_path_the_api_compacts_and_its_blocks_come_back_verbatim(fake_api, monkeypatch):
    window = 100_000  # compaction trigger: 80,000 tokens
    the_window_is(monkeypatch, window)
    fake_api.context_windows["claude-opus-4-8"] = window
    fake_api.responder = analyst(calls=4)
    agent = Agent(model="claude-opus-4-8", tools=[load_rows], max_retries=0)
    notices = session(agent)
    assert fake_api.errors == [], "no request failed"
    assert fake_api.compactions, "the API compacted"
    assert any(n.text.startswith("The API compacted the conversation") for n in notices)
    bodies = sent(fake_api)
    assert not any(is_summary_request(b) for b in bodies), "no client-side compaction"
    # Each compaction block is in the history, and in every later request, as it was sent.
    kept = [
        b
        for m in agent.messages
        if m["role"] == "assistant"
        for b in m["content"]
        if b.get("type") == "compaction"
    ]
    assert kept == fake_api.compactions
    carried = [
        {k: v for k, v in b["messages"][0]["content"][0].items() if k != "cache_control"}
        for b in bodies
        if isinstance(b["messages"][0]["content"], list)
        and b["messages"][0]["content"][0].get("type") == "compaction"
    ]
    assert carried and all(block in kept for block in carried)  # and the fake checked each
    assert max(prompt_tokens(b) for b in bodies) <= window
    assert_valid_history(agent.messages)


def test_client_path_nbagent_compacts_before_the_window_fills(fake_api, monkeypatch):
    window = 20_000
    the_window_is(monkeypatch, window)
    fake_api.context_windows["claude-haiku-4-5"] = window
    fake_api.responder = analyst(calls=2)
    agent = Agent(model="claude-haiku-4-5", tools=[load_rows], max_retries=0)
    notices = session(agent)
    assert fake_api.errors == [], "no request failed"
    bodies = sent(fake_api)
    assert sum(is_summary_request(b) for b in bodies) >= 2, "summaries were written"
    compacted = [n for n in notices if n.text.startswith("Compacted the conversation")]
    assert len(compacted) >= 3
    assert not fake_api.compactions and "context_management" not in bodies[-1]
    for body in bodies:
        assert_valid_history(body["messages"])
    assert_valid_history(agent.messages)


def test_prompt_too_long_is_compacted_away_with_one_retry(fake_api, monkeypatch):
    # nbagent believes the window is 200,000 tokens; the API's is 20,000.
    the_window_is(monkeypatch, 200_000)
    fake_api.context_windows["claude-haiku-4-5"] = 20_000
    fake_api.responder = analyst(calls=2)
    agent = Agent(model="claude-haiku-4-5", tools=[load_rows], max_retries=0)
    notices = session(agent, turns=20)
    refusals = fake_api.errors
    assert refusals and all("prompt is too long" in e.message for e in refusals)
    recoveries = [
        n for n in notices if "compacting the conversation and trying once more" in n.text
    ]
    assert len(recoveries) == len(refusals)
    bodies = sent(fake_api)
    for i, body in enumerate(bodies):
        if prompt_tokens(body) > 20_000:
            # The refused request is followed by its compaction and one retry that fits.
            retry = next(b for b in bodies[i + 1 :] if not is_summary_request(b))
            assert prompt_tokens(retry) <= 20_000
    assert_valid_history(agent.messages)
