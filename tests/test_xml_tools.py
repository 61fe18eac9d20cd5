"""The prompt-based (xml) tool protocol: tools described in the system prompt, calls read
from the streamed text as it arrives, results sent back as user text, and a readable
error for a malformed call. End to end with a model that has no native tools, on the
fake OpenAI server, the fake Messages API and an in-process provider."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from nbagent import Agent
from nbagent.events import Event, TextDelta, ToolCallStart, ToolResultEvent
from nbagent.providers.anthropic_api import AnthropicProvider
from nbagent.providers.base import ModelResponse
from nbagent.providers.openai_compat import OpenAICompatProvider
from nbagent.providers.xml_tools import (
    INVALID_CALL,
    CallParser,
    XmlToolProvider,
    parse_call,
    to_xml_request,
)
from tests.fake_anthropic import FakeAnthropic, reply, text
from tests.fake_openai import FakeOpenAI
from tests.helpers import assert_valid_history
from tests.sample_tools import add

pytestmark = pytest.mark.usefixtures("in_tmp")

CALL = '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>'


def feed_all(parser: CallParser, chunks: list[str]) -> list[tuple[str, Any]]:
    out = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out + parser.finish()


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("size", [1, 2, 3, 5, 11, 1000])
def test_a_call_split_across_chunks_is_put_together(size):
    stream = f"Let me add.\n{CALL}\nDone."
    parts = feed_all(CallParser(), [stream[i : i + size] for i in range(0, len(stream), size)])
    texts = "".join(v for k, v in parts if k == "text")
    calls = [v for k, v in parts if k == "call"]
    assert texts == "Let me add.\n\nDone.", "whitespace around the call dropped, a paragraph after"
    assert [(c["name"], c["input"]) for c in calls] == [("add", {"a": 2, "b": 3})]
    assert calls[0]["id"].startswith("toolu_xml_")


def test_text_before_a_call_streams_before_the_call_is_complete():
    parser = CallParser()
    assert parser.feed("I will check the wea") == [("text", "I will check the wea")]
    # a possible tag start is held back (with the whitespace before it), and released
    # when it turns out not to be one
    assert parser.feed("ther <tool") == [("text", "ther")]
    assert parser.feed('_call>\n{"name": ') == []
    assert parser.feed('"add", "arguments": {}}</tool_call>')[0][0] == "call"
    assert parser.feed("\n") == []
    assert parser.feed("a < b") == [("text", "\n\na < b")]
    assert parser.feed(" <to") == []
    assert parser.feed("p>") == [("text", " <top>")]


def test_several_calls_in_one_answer():
    second = CALL.replace('"a": 2', '"a": 10')
    parts = feed_all(CallParser(), [f"{CALL}\n{second}"])
    assert [v["input"]["a"] for k, v in parts if k == "call"] == [2, 10]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"name": "add", "arguments": {a: 1}}', "the call is not valid JSON"),
        ('["add"]', "the call is not a JSON object"),
        ('{"arguments": {}}', 'the call has no "name"'),
        ('{"name": "add", "arguments": [1, 2]}', '"arguments" is not a JSON object'),
    ],
)
def test_malformed_calls_become_invalid_tool_call_with_the_reason(body, reason):
    block = parse_call(body)
    assert block["name"] == INVALID_CALL
    assert block["input"]["error"].startswith(reason) and block["input"]["text"] == body


def test_lenient_forms_models_write():
    fenced = parse_call('```json\n{"name": "add", "parameters": {"a": 1, "b": 1}}\n```')
    assert (fenced["name"], fenced["input"]) == ("add", {"a": 1, "b": 1})
    as_string = parse_call('{"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}')
    assert as_string["input"] == {"a": 1, "b": 2}
    assert parse_call('{"name": "now"}')["input"] == {}


def test_results_the_model_writes_itself_are_dropped():
    parts = feed_all(CallParser(), [f"{CALL}\n<tool_response>5</tool_response> The sum is 5."])
    assert [k for k, _ in parts] == ["call"]


def test_an_unclosed_call_at_the_end_is_read_unless_cut_at_max_tokens():
    parser = CallParser()
    parser.feed('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}')
    assert parser.finish()[0][1]["input"] == {"a": 1, "b": 2}
    cut = CallParser()
    cut.feed('<tool_call>{"name": "add", "argu')
    assert cut.finish(cut=True) == [("text", '<tool_call>{"name": "add", "argu')]


# --------------------------------------------------------------------------- requests


def test_the_request_describes_tools_in_the_system_prompt_and_sends_none():
    params = {
        "model": "gemma3",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [add.to_param()],
        "tool_choice": {"type": "none"},
    }
    request = to_xml_request(params)
    assert "tools" not in request and "tool_choice" not in request
    first, added = request["system"]
    assert first == {"type": "text", "text": "Be brief."}, "the cache breakpoint moves to the end"
    assert added["cache_control"] == {"type": "ephemeral"}
    assert "<tool_call>" in added["text"] and "### add" in added["text"]
    assert json.dumps(add.to_param()["input_schema"]) in added["text"]
    assert "do not write a tool call" in added["text"], "tool_choice none, said in words"
    named = to_xml_request({**params, "tool_choice": {"type": "tool", "name": "add"}})
    assert "must call the tool add" in named["system"][-1]["text"]


def test_past_calls_and_results_are_sent_as_text():
    history = [
        {"role": "user", "content": "add"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Adding."},
                {"type": "tool_use", "id": "toolu_xml_1", "name": "add", "input": {"a": 2, "b": 3}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_xml_1", "content": "5"},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]
    request = to_xml_request({"model": "m", "system": "s", "messages": history, "tools": []})
    assistant, user = request["messages"][1:]
    assert assistant["content"] == [
        {
            "type": "text",
            "text": 'Adding.\n\n<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>',
        }
    ]
    assert user["content"] == [
        {"type": "text", "text": '<tool_response name="add">\n5\n</tool_response>\n\nthanks'}
    ]
    assert request["system"] == "s", "no tools: nothing to describe"


# --------------------------------------------------------------------------- end to end


@pytest.fixture(params=["openai", "anthropic"])
def xml_agent(request) -> Iterator[tuple[Any, Agent]]:
    """An agent whose model has no native tools, on either fake server."""
    if request.param == "openai":
        with FakeOpenAI() as server:
            inner: Any = OpenAICompatProvider(api_key="k", base_url=server.url)
            yield server, Agent(model="gemma3", tools=[add], provider=XmlToolProvider(inner))
    else:
        with FakeAnthropic() as server:
            inner = AnthropicProvider(api_key="k", base_url=server.url)
            yield (
                server,
                Agent(model="claude-test-model", tools=[add], provider=XmlToolProvider(inner)),
            )


def test_a_model_without_native_tools_calls_tools_in_text(xml_agent):
    server, agent = xml_agent
    server.enqueue(reply(text(f"Let me add those.\n{CALL}", chunk=7)), "The sum is 5.")
    events = list(agent.stream("add 2 and 3"))

    streamed = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert streamed.startswith("Let me add those.") and "<tool_call>" not in streamed
    assert [e.name for e in events if isinstance(e, ToolCallStart)] == ["add"]
    results = [e for e in events if isinstance(e, ToolResultEvent)]
    assert [r.output.content for r in results] == ["5"]
    assert events[-1].stop_reason == "end_turn"

    first, second = (r["body"] for r in server.requests)
    assert "tools" not in first and "tool_choice" not in first
    system = json.dumps(first.get("system") or first["messages"][0])
    assert "### add" in system and "<tool_call>" in system
    sent = json.dumps(second["messages"])
    assert '<tool_response name=\\"add\\">\\n5\\n</tool_response>' in sent
    assert "<tool_call>" in sent, "the past call goes back as the text the model wrote"
    # the history itself is canonical: tool_use and tool_result blocks
    assert agent.messages[1]["content"][-1]["type"] == "tool_use"
    assert agent.messages[2]["content"][0]["type"] == "tool_result"
    assert_valid_history(agent.messages)


def test_a_malformed_call_gets_an_error_the_model_can_read(xml_agent):
    server, agent = xml_agent
    server.enqueue(
        reply(text('<tool_call>{"name": "add", "arguments": {a: 2}}</tool_call>')),
        reply(text(CALL)),
        "5, at the second try.",
    )
    result = agent.run("add 2 and 3")
    assert result.text == "5, at the second try."
    sent = json.dumps(server.requests[1]["body"]["messages"])
    assert "Your tool call could not be read: the call is not valid JSON" in sent
    assert '{\\"name\\": \\"<tool name>\\"' in sent, "with the format to use"
    assert [c.name for c in result.tool_calls] == [INVALID_CALL, "add"]
    assert_valid_history(agent.messages)


class ScriptedTextProvider:
    """An in-process provider that only streams text (no tool calling at all)."""

    def __init__(self, answers: list[list[str]]) -> None:
        self.answers = answers
        self.requests: list[dict[str, Any]] = []

    def stream(self, params: dict[str, Any]) -> Generator[Event, None, ModelResponse]:
        assert "tools" not in params, "a model without tools never sees the tools parameter"
        self.requests.append(params)
        chunks = self.answers.pop(0)
        for chunk in chunks:
            yield TextDelta(chunk)
        return ModelResponse([{"type": "text", "text": "".join(chunks)}], "end_turn", "local")


def test_any_provider_can_be_wrapped():
    inner = ScriptedTextProvider([[CALL[:9], CALL[9:30], CALL[30:]], ["Five."]])
    agent = Agent(model="local", tools=[add], provider=XmlToolProvider(inner))
    result = agent.run("add")
    assert result.text == "Five." and [c.input for c in result.tool_calls] == [{"a": 2, "b": 3}]
    assert "<tool_response" in json.dumps(inner.requests[1]["messages"])
