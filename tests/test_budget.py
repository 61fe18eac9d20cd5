"""Budgets: a turn or a session stops before a request would pass its cost limit."""

from __future__ import annotations

import pytest

from nbagent import Agent, tool
from nbagent.budget import Budget, estimate_input_tokens
from nbagent.events import Notice, TurnEnd
from tests.fake_anthropic import reply, text, tool_use
from tests.helpers import assert_valid_history

pytestmark = pytest.mark.usefixtures("in_tmp")


@tool(read_only=True)
def lookup(key: str) -> str:
    """Look something up.

    Args:
        key: what to look up
    """
    return "value of " + key


# Opus 4.8: $5 / MTok in, $25 / MTok out. 100k output tokens cost $2.50.
EXPENSIVE = {"input_tokens": 1_000, "output_tokens": 100_000}


def make_agent(**options) -> Agent:
    return Agent(tools=[lookup], model="claude-opus-4-8", **options)


def test_turn_budget_stops_before_the_request_that_would_pass_it(fake_api):
    fake_api.enqueue(
        reply(tool_use("lookup", {"key": "a"}), usage=EXPENSIVE),
    )
    agent = make_agent(turn_budget_usd=2.5051)  # $2.505 spent by the first response
    events = list(agent.stream("look up a"))
    end = events[-1]
    assert isinstance(end, TurnEnd) and end.stop_reason == "budget"
    assert "turn budget of $2.5051" in end.message
    assert len(fake_api.requests) == 1, "the over-budget request was not sent"
    notes = [e.text for e in events if isinstance(e, Notice)]
    assert "Budget: turn $2.5050 of $2.5051" in notes
    assert_valid_history(agent.messages)
    assert agent.messages[-1]["content"][0]["type"] == "tool_result"

    # The next turn (a new budget) is a valid request that continues the conversation.
    fake_api.enqueue(reply(text("Here it is."), usage={"input_tokens": 10, "output_tokens": 5}))
    result = agent.run("go on")
    assert result.stop_reason == "end_turn" and result.text == "Here it is."
    assert_valid_history(fake_api.last_body["messages"])


def test_session_budget_counts_earlier_turns(fake_api):
    fake_api.enqueue(reply(text("first"), usage=EXPENSIVE))
    agent = make_agent(session_budget_usd=2.5051)
    assert agent.run("one").stop_reason == "end_turn"  # $2.505 spent
    result = agent.run("two")
    assert result.stop_reason == "budget" and len(fake_api.requests) == 1
    assert_valid_history(agent.messages)


def test_per_turn_budget_override_and_unknown_price(fake_api):
    fake_api.enqueue(reply(text("cheap"), usage={"input_tokens": 10, "output_tokens": 5}))
    agent = make_agent()
    assert agent.run("hi", turn_budget_usd=1.0).stop_reason == "end_turn"
    assert agent.run("again", turn_budget_usd=0.0).stop_reason == "budget"

    fake_api.enqueue(reply(text("local"), usage={"input_tokens": 10, "output_tokens": 5}))
    local = Agent(tools=[lookup], model="my-local-model", turn_budget_usd=0.0)
    events = list(local.stream("hi"))
    assert any(
        isinstance(e, Notice) and "not enforced" in e.text and "my-local-model" in e.text
        for e in events
    )
    assert events[-1].stop_reason == "end_turn"


def test_estimate_counts_text_and_images():
    params = {
        "system": "x" * 400,
        "messages": [
            {"role": "user", "content": [{"type": "image", "source": {"data": "y" * 10_000}}]}
        ],
    }
    assert estimate_input_tokens(params) == 100 + 1_600
    budget = Budget(turn_usd=1.0, session_usd=None, model="claude-opus-4-8")
    assert budget.request_cost(params) == pytest.approx(1_700 * 5 * 1.25 / 1e6)
