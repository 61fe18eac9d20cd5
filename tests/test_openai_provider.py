"""The OpenAI-compatible provider against the scripted fake Chat Completions server,
through the real `openai` SDK: request translation, streamed events, the canonical
response, usage, retries, errors and their one-line messages."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from nbagent.errors import ConfigError
from nbagent.events import TextDelta, ThinkingDelta, ToolCallStart, ToolInputDelta
from nbagent.providers.base import ModelResponse
from nbagent.providers.openai_compat import (
    IMAGE_FALLBACK,
    Endpoint,
    OpenAICompatProvider,
    describe_openai_error,
    to_chat_request,
)
from tests.fake_anthropic import cut, error, reply, text, thinking, tool_use
from tests.fake_openai import FAKE_OPENAI_KEY, FakeOpenAI

ADD_TOOL = {
    "name": "add",
    "description": "Add two integers.",
    "input_schema": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
}
PNG = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}}


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=FAKE_OPENAI_KEY) as server:
        yield server


def provider_for(server: FakeOpenAI, **kwargs: Any) -> OpenAICompatProvider:
    kwargs.setdefault("max_retries", 2)
    return OpenAICompatProvider(api_key=FAKE_OPENAI_KEY, base_url=server.url, **kwargs)


def run(provider: OpenAICompatProvider, params: dict[str, Any]) -> tuple[list, ModelResponse]:
    events = []
    gen = provider.stream(params)
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


def request(**kwargs: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": "gpt-5.1",
        "max_tokens": 1000,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi"}],
    }
    params.update(kwargs)
    return params


# --------------------------------------------------------------------------- streaming


def test_text_reasoning_and_parallel_tool_calls_stream_as_loop_events(fake):
    fake.enqueue(
        reply(
            thinking("The user wants two sums.", chunk=7),
            text("Adding both.", chunk=4),
            tool_use("add", {"a": 1, "b": 2}, chunk=5),
            tool_use("add", {"a": 30, "b": 12}, chunk=3),
            usage={"input_tokens": 120, "cache_read_input_tokens": 880, "output_tokens": 40},
        )
    )
    events, response = run(provider_for(fake), request(tools=[ADD_TOOL]))

    thought = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
    assert thought == "The user wants two sums."
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Adding both."
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert [s.name for s in starts] == ["add", "add"]
    for start, args in zip(starts, ({"a": 1, "b": 2}, {"a": 30, "b": 12}), strict=True):
        parts = [
            e.partial_json for e in events if isinstance(e, ToolInputDelta) and e.id == start.id
        ]
        assert len(parts) > 1, "the arguments arrive split across chunks"
        assert json.loads("".join(parts)) == args

    assert response.stop_reason == "tool_use"
    assert response.content == [
        {"type": "text", "text": "Adding both."},
        {"type": "tool_use", "id": starts[0].id, "name": "add", "input": {"a": 1, "b": 2}},
        {"type": "tool_use", "id": starts[1].id, "name": "add", "input": {"a": 30, "b": 12}},
    ]
    # prompt_tokens counts cached tokens too: the uncached part is what is left
    assert (response.input_tokens, response.cache_read_input_tokens) == (120, 880)
    assert response.output_tokens == 40 and response.model == "gpt-5.1"
    assert isinstance(response.raw, openai.types.chat.ChatCompletion)
    assert response.raw.choices[0].message.tool_calls[1].function.name == "add"


def test_reasoning_field_of_openrouter_and_ollama_is_thinking_too():
    with FakeOpenAI(reasoning_field="reasoning") as server:
        server.enqueue(reply(thinking("step by step"), text("42")))
        events, response = run(provider_for(server), request())
    assert "".join(e.text for e in events if isinstance(e, ThinkingDelta)) == "step by step"
    # reasoning carries no signature the Messages API would take back: shown, not kept
    assert response.content == [{"type": "text", "text": "42"}]


@pytest.mark.parametrize(
    ("scripted", "canonical"),
    [("end_turn", "end_turn"), ("max_tokens", "max_tokens"), ("refusal", "refusal")],
)
def test_finish_reasons_map_to_stop_reasons(fake, scripted, canonical):
    fake.enqueue(reply(text("partial"), stop_reason=scripted))
    _, response = run(provider_for(fake), request())
    assert fake.requests[-1]["body"]["stream"] is True
    assert response.stop_reason == canonical


# --------------------------------------------------------------------------- requests


def test_canonical_request_is_translated_for_chat_completions(fake):
    history = [
        {"role": "user", "content": [{"type": "text", "text": "add 1 and 2"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hm", "signature": "sig"},
                {"type": "text", "text": "Sure."},
                {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 1, "b": 2}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "3"},
                {"type": "text", "text": "and now?", "cache_control": {"type": "ephemeral"}},
            ],
        },
    ]
    fake.enqueue("3 it is.")
    params = request(
        system=[
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "Use SI units.", "cache_control": {"type": "ephemeral"}},
        ],
        messages=history,
        tools=[ADD_TOOL, {"type": "web_search_20250305", "name": "web_search"}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        thinking={"type": "adaptive", "display": "summarized"},
        output_config={"effort": "low"},
    )
    run(provider_for(fake), params)
    body = fake.last_body
    assert body["messages"] == [
        {"role": "system", "content": "You are terse.\n\nUse SI units."},
        {"role": "user", "content": "add 1 and 2"},
        {
            "role": "assistant",
            "content": "Sure.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "3"},
        {"role": "user", "content": "and now?"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "add",
                "parameters": ADD_TOOL["input_schema"],
                "description": "Add two integers.",
            },
        }
    ], "server tools are Anthropic's: not sent"
    assert body["tool_choice"] == "required" and body["parallel_tool_calls"] is False
    assert body["reasoning_effort"] == "low"
    assert body["max_completion_tokens"] == 1000 and "max_tokens" not in body
    assert body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "add"}, {"type": "function", "function": {"name": "add"}}),
    ],
)
def test_tool_choice_forms(fake, choice, sent):
    fake.enqueue("ok")
    run(provider_for(fake), request(tools=[ADD_TOOL], tool_choice=choice))
    assert fake.last_body["tool_choice"] == sent


def test_max_tokens_is_capped_at_the_models_output_limit_and_named_per_server(fake):
    fake.enqueue("ok", "ok")
    run(provider_for(fake), request(model="gpt-4o", max_tokens=32_000))
    assert fake.last_body["max_completion_tokens"] == 16_384
    run(provider_for(fake, token_param="max_tokens"), request(model="my-local", max_tokens=500))
    assert fake.last_body["max_tokens"] == 500


def test_images_in_tool_results_follow_as_a_user_message(fake):
    history = [
        {"role": "user", "content": "plot it"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "c1", "name": "plot", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "c1",
                    "content": [{"type": "text", "text": "figure 1"}, PNG],
                }
            ],
        },
    ]
    fake.enqueue("A rising line.")
    run(provider_for(fake), request(messages=history))
    tool_msg, user_msg = fake.last_body["messages"][-2:]
    assert tool_msg["role"] == "tool" and tool_msg["content"].startswith("figure 1")
    assert user_msg["role"] == "user"
    image = next(p for p in user_msg["content"] if p["type"] == "image_url")
    assert image["image_url"]["url"] == "data:image/png;base64,iVBORw0K"


def test_endpoints_without_images_get_a_text_fallback():
    history = [
        {"role": "user", "content": [{"type": "text", "text": "look"}, PNG]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "c1", "name": "p", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "c1", "content": [PNG]}],
        },
    ]
    with FakeOpenAI(vision=False) as server:
        server.enqueue("I cannot see images.")
        _, response = run(provider_for(server, accepts_images=False), request(messages=history))
        sent = server.last_body["messages"]
    assert response.content[0]["text"] == "I cannot see images."
    assert sent[1] == {"role": "user", "content": f"look\n\n{IMAGE_FALLBACK}"}
    assert sent[-1] == {"role": "tool", "tool_call_id": "c1", "content": IMAGE_FALLBACK}


def test_error_results_say_so_in_the_tool_message():
    params = request(
        messages=[
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "c", "name": "t", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "c",
                        "content": "denied",
                        "is_error": True,
                    }
                ],
            },
        ]
    )
    sent = to_chat_request(params, model="gpt-5.1")["messages"][-1]
    assert sent == {"role": "tool", "tool_call_id": "c", "content": "Error: denied"}


def test_a_provider_prefix_is_not_sent(fake):
    fake.enqueue("ok")
    run(provider_for(fake), request(model="openai:gpt-5.1"))
    assert fake.last_body["model"] == "gpt-5.1"


# --------------------------------------------------------------------------- errors


def test_rate_limit_and_server_errors_are_retried_by_the_sdk(fake):
    fake.enqueue(error(429, retry_after=0), error(500, retry_after=0), "after retries")
    _, response = run(provider_for(fake), request())
    assert response.content == [{"type": "text", "text": "after retries"}]
    assert len(fake.requests) == 3


def test_exhausted_retries_raise_the_sdks_typed_error_with_a_one_line_message(fake):
    fake.enqueue(error(429, "Rate limit reached for gpt-5.1", retry_after=0))
    fake.enqueue(error(429, "Rate limit reached for gpt-5.1", retry_after=0))
    with pytest.raises(openai.RateLimitError) as caught:
        run(provider_for(fake, max_retries=1), request())
    message = describe_openai_error(caught.value)
    assert message == (
        f"Rate limited (429) by {fake.url}/chat/completions (model gpt-5.1) after retries: "
        "Rate limit reached for gpt-5.1. Wait and try again."
    )


def test_rejected_key_names_the_providers_variable(fake):
    provider = OpenAICompatProvider(
        api_key="sk-wrong",
        base_url=fake.url,
        endpoint=Endpoint("openrouter", "OpenRouter", "OPENROUTER_API_KEY", None),
    )
    with pytest.raises(openai.AuthenticationError) as caught:
        run(provider, request())
    message = describe_openai_error(caught.value)
    assert message is not None and message.startswith("The API key was rejected (401)")
    assert message.endswith("check OPENROUTER_API_KEY.") and "sk-wrong" not in message


def test_not_found_and_bad_request_messages(fake):
    fake.enqueue(error(404, "The model `gpt-9` does not exist"), error(400, "bad thing"))
    with pytest.raises(openai.NotFoundError) as not_found:
        run(provider_for(fake), request(model="gpt-9"))
    assert describe_openai_error(not_found.value) == (
        f"Not found (404) at {fake.url}/chat/completions (model gpt-9): "
        "The model `gpt-9` does not exist. Check the model name and OPENAI_BASE_URL."
    )
    with pytest.raises(openai.BadRequestError) as bad:
        run(provider_for(fake), request())
    assert describe_openai_error(bad.value) == (
        f"API error 400: bad thing. Sent to {fake.url}/chat/completions (model gpt-5.1)."
    )


def test_a_cut_stream_is_a_typed_connection_error_and_keeps_the_partial(fake):
    fake.enqueue(cut(reply(text("This answer is cut off somewhere.", chunk=5)), after_events=4))
    provider = provider_for(fake, max_retries=0)
    events = []
    with pytest.raises(openai.APIConnectionError) as caught:
        for event in provider.stream(request()):
            events.append(event)
    assert "".join(e.text for e in events) == "This answer is "
    partial = provider.take_partial()
    assert partial is not None and partial.content == [{"type": "text", "text": "This answer is "}]
    assert provider.take_partial() is None, "handed over once"
    message = describe_openai_error(caught.value)
    assert message is not None and message.startswith(f"The connection to {fake.url}")
    assert message.endswith("The conversation is intact; try again.")


def test_nothing_listening_is_could_not_connect():
    provider = OpenAICompatProvider(api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=0)
    with pytest.raises(openai.APIConnectionError) as caught:
        run(provider, request())
    message = describe_openai_error(caught.value)
    assert message is not None and "\n" not in message
    assert message.startswith("Could not connect to http://127.0.0.1:9/v1/chat/completions")
    assert message.endswith("Check OPENAI_BASE_URL.")


def test_a_local_server_that_is_not_running_is_one_config_line():
    provider = OpenAICompatProvider(
        api_key=None,
        base_url="http://127.0.0.1:9/v1",
        endpoint=Endpoint(
            "ollama", "Ollama", None, "OLLAMA_HOST", True, "start it with `ollama serve`"
        ),
    )
    with pytest.raises(ConfigError) as caught:
        run(provider, request(model="qwen3"))
    assert str(caught.value) == (
        "Ollama is not reachable at http://127.0.0.1:9/v1: start it with `ollama serve`."
    )


def test_a_missing_key_is_raised_at_the_first_request_as_config_error(fake):
    provider = OpenAICompatProvider(
        api_key=None, base_url=fake.url, missing_key="OPENAI_API_KEY is not set: export it"
    )
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        run(provider, request())
    assert fake.requests == []


def test_other_exceptions_are_not_described():
    assert describe_openai_error(ValueError("x")) is None


def test_closing_the_stream_early_closes_the_response_and_keeps_the_partial(fake):
    fake.enqueue(reply(text("word " * 100, chunk=5)))
    provider = provider_for(fake)
    gen = provider.stream(request())
    assert isinstance(next(gen), TextDelta)
    gen.close()  # what the loop does on a stop
    partial = provider.take_partial()
    assert partial is not None and partial.content[0]["text"].startswith("word")
    fake.enqueue("next")
    _, response = run(provider, request())
    assert response.content == [{"type": "text", "text": "next"}]


def test_the_sdk_is_imported_only_when_a_request_is_made():
    code = (
        "import sys\n"
        "from nbagent.providers.registry import make_provider, parse_model_name\n"
        "from nbagent.config import resolve\n"
        "p = make_provider('openai', resolve({'model': 'openai:gpt-5.1'}, env={'OPENAI_API_KEY': 'k'}), env={'OPENAI_API_KEY': 'k'})\n"
        "assert 'openai' not in sys.modules, 'imported too early'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_through_the_agent_a_missing_key_ends_the_turn_with_one_line(in_tmp):
    from nbagent import Agent
    from nbagent.events import ErrorEvent

    provider = OpenAICompatProvider(
        api_key=None,
        base_url="http://127.0.0.1:9/v1",
        missing_key="OPENAI_API_KEY is not set: export OPENAI_API_KEY=... or add it to .env",
    )
    events = list(Agent(model="gpt-5.1", tools=[], provider=provider).stream("hi"))
    failure = next(e for e in events if isinstance(e, ErrorEvent))
    assert failure.message.startswith("OPENAI_API_KEY is not set") and "\n" not in failure.message
    assert events[-1].stop_reason == "error"
