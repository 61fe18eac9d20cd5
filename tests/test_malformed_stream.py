"""A malformed stream event becomes the SDK's typed connection error, as a cut stream does.

Before: the raw `json.JSONDecodeError` (or IndexError, AttributeError, ...) of
the SDK's decoder escaped the provider, and `nbagent run` printed a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import pytest

from nbagent import Agent
from nbagent.events import ErrorEvent, TextDelta, TurnEnd, Usage
from nbagent.providers.anthropic_api import AnthropicProvider
from tests.fake_anthropic import FAKE_API_KEY, reply, text, tool_use
from tests.fake_faults import FaultyAnthropic, malformed
from tests.helpers import assert_valid_history

pytestmark = pytest.mark.usefixtures("in_tmp")

ANSWER = "The first half of an answer, then garbage."

# Each is what a garbling proxy or a truncated write could put in one event's data.
BAD_EVENTS = {
    "truncated JSON": {},
    "not JSON": {"data": "this is not json"},
    "block index out of range": {
        "data": json.dumps(
            {
                "type": "content_block_delta",
                "index": 7,
                "delta": {"type": "text_delta", "text": "x"},
            }
        )
    },
    "missing field": {"data": json.dumps({"type": "content_block_delta", "index": 0})},
    "not an object": {"data": "[1, 2]"},
}


@pytest.fixture
def faulty_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyAnthropic]:
    with FaultyAnthropic() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_API_KEY)
        yield server


def _params() -> dict:
    return {"model": "claude-x", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("fault", list(BAD_EVENTS), ids=list(BAD_EVENTS))
def test_provider_raises_typed_connection_error_and_keeps_partial(faulty_api, fault):
    faulty_api.enqueue(
        malformed(
            reply(text(ANSWER, chunk=10), usage={"input_tokens": 1234}),
            after_events=4,  # message_start, ping, block start, one text delta
            **BAD_EVENTS[fault],
        )
    )
    provider = AnthropicProvider(api_key=FAKE_API_KEY, base_url=faulty_api.url, max_retries=0)
    seen: list[str] = []
    with pytest.raises(anthropic.APIConnectionError) as caught:
        for event in provider.stream(_params()):
            if isinstance(event, TextDelta):
                seen.append(event.text)
    assert "malformed event" in str(caught.value)
    assert seen == [ANSWER[:10]], "the events before the bad one were delivered"
    partial = provider.take_partial()
    assert partial is not None and partial.input_tokens == 1234
    provider.close()


def test_a_good_stream_after_a_malformed_one_works(faulty_api):
    faulty_api.enqueue(malformed(reply(text(ANSWER)), after_events=4), "Fine now.")
    provider = AnthropicProvider(api_key=FAKE_API_KEY, base_url=faulty_api.url, max_retries=0)
    with pytest.raises(anthropic.APIConnectionError):
        list(provider.stream(_params()))
    stream = provider.stream(_params())
    with pytest.raises(StopIteration) as done:
        while True:
            next(stream)
    assert done.value.value.content[0]["text"] == "Fine now."
    provider.close()


def test_agent_turn_ends_with_one_line_error_and_valid_history(faulty_api):
    faulty_api.enqueue(
        reply(tool_use("add", {"a": 1, "b": 2})),
        malformed(
            reply(text(ANSWER, chunk=10), usage={"input_tokens": 500, "output_tokens": 40}),
            after_events=5,
        ),
        "Recovered.",
    )
    from tests.test_agent_loop import add

    agent = Agent(model="claude-opus-4-8", tools=[add], max_retries=0)
    events = list(agent.stream("add"))
    error = next(e for e in events if isinstance(e, ErrorEvent))
    assert isinstance(error.exception, anthropic.APIConnectionError)
    assert "\n" not in error.message and "malformed event" in error.message
    end = events[-1]
    assert isinstance(end, TurnEnd) and end.stop_reason == "error"
    assert any(isinstance(e, Usage) and e.input_tokens == 500 for e in events), (
        "the usage of the broken response is counted"
    )
    assert_valid_history(agent.messages)
    assert agent.run("again").text == "Recovered."
    assert_valid_history(agent.messages)
