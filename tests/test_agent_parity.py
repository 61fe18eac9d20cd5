"""The tool-calling API the seeds describe (003 ChatAgent, 004 connector), on `Agent`."""

from __future__ import annotations

import anthropic
import pytest

from nbagent import Agent, tool
from nbagent.errors import ConfigError
from tests.fake_anthropic import reply, text, tool_use
from tests.helpers import assert_valid_history

pytestmark = pytest.mark.usefixtures("in_tmp")


@tool(read_only=True)
def weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city
    """
    return f"sunny in {city}"


@tool(read_only=True)
def clock(zone: str) -> str:
    """The time in a zone.

    Args:
        zone: a time zone
    """
    return f"noon in {zone}"


def make_agent(**options) -> Agent:
    return Agent(tools=[weather, clock], model="claude-opus-4-8", **options)


def test_tool_choice_short_forms_dicts_and_per_call(fake_api):
    fake_api.enqueue("ok", "ok", "ok", "ok")
    agent = make_agent(tool_choice="any")
    agent.run("a")
    body = fake_api.last_body
    # A forced choice goes without thinking: the API rejects the two together.
    assert body["tool_choice"] == {"type": "any"} and "thinking" not in body
    agent.run("b", tool_choice="weather")
    assert fake_api.last_body["tool_choice"] == {"type": "tool", "name": "weather"}
    agent.run("c", tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    body = fake_api.last_body
    assert body["tool_choice"]["disable_parallel_tool_use"] is True and "thinking" in body
    agent.run("d", tool_choice="none")
    assert fake_api.last_body["tool_choice"] == {"type": "none"}
    with pytest.raises(ConfigError, match="names no tool"):
        agent.run("e", tool_choice="nonexistent")
    assert_valid_history(agent.messages)


def test_forced_tool_choice_with_thinking_is_what_the_fake_rejects(fake_api):
    """The fake rejects the combination as the API does, so the test above means something."""
    client = anthropic.Anthropic()
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(
            model="claude-opus-4-8",
            max_tokens=100,
            messages=[{"role": "user", "content": "x"}],
            tools=[weather.to_param()],
            tool_choice={"type": "any"},
            thinking={"type": "adaptive"},
        )


def test_system_as_list_of_strings_and_blocks(fake_api):
    fake_api.enqueue("ok", "ok")
    make_agent(system=["be brief", "use SI units"]).run("hi")
    system = fake_api.last_body["system"]
    assert [b["text"] for b in system] == ["be brief", "use SI units"]
    make_agent(system=[{"type": "text", "text": "block"}]).run("hi")
    assert fake_api.last_body["system"][0]["text"] == "block"


def test_add_tools_refuses_duplicates_and_bad_names():
    agent = make_agent()
    with pytest.raises(ValueError, match="already exists"):
        agent.add_tools([weather])
    with pytest.raises(TypeError, match="not a Tool"):
        agent.add_tools(["not a tool"])  # type: ignore[list-item]
    agent.add_tools([tool(name="weather_2", read_only=True)(weather.func)])
    assert "weather_2" in [t.name for t in agent.tools]
    with pytest.raises(ValueError, match="invalid tool name"):
        agent.add_tools([tool(name="bad name!")(weather.func)])


def test_execute_records_the_result_and_run_continues(fake_api):
    fake_api.enqueue(
        reply(tool_use("weather", {"city": "Oslo"}), tool_use("clock", {"zone": "CET"})),
        reply(text("Sunny and noon.")),
    )
    agent = make_agent()
    result = agent.run("weather and time?", execute_tools=False)
    assert result.stop_reason == "awaiting_tool_results"
    for call in result.pending_tool_calls:
        agent.execute(call)
    done = agent.run()
    assert done.text == "Sunny and noon."
    results = fake_api.last_body["messages"][-1]["content"]
    assert [r["content"] for r in results if r["type"] == "tool_result"] == [
        "sunny in Oslo",
        "noon in CET",
    ]
    assert_valid_history(agent.messages)


def test_api_key_and_base_url_arguments(fake_api, monkeypatch):
    url = fake_api.url
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # wrong: the argument wins
    fake_api.enqueue("ok")
    result = make_agent(api_key="sk-ant-explicit", base_url=url).run("hi")
    assert result.text == "ok"
    headers = fake_api.requests[-1]["headers"]
    assert "sk-ant-explicit" in (headers.get("x-api-key", "") + headers.get("authorization", ""))
    assert result.raw is not None and result.raw.content[0].text == "ok"


def test_run_result_messages_is_a_copy(fake_api):
    fake_api.enqueue("one", "two")
    agent = make_agent()
    first = agent.run("a")
    n = len(first.messages)
    agent.run("b")
    assert len(first.messages) == n and len(agent.messages) == n + 2


def test_provider_model_names_choose_the_provider(monkeypatch):
    """`openai:gpt-5.1` goes to the OpenAI-compatible endpoint the environment names,
    with the bare model id; a bare name stays with Claude."""
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI(api_key="sk-openai-test-key-123") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-test-key-123")
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        server.enqueue(reply(tool_use("weather", {"city": "Rome"})), reply(text("Sunny.")))
        agent = Agent(tools=[weather], model="openai:gpt-5.1")
        result = agent.run("weather in Rome?")
        assert result.text == "Sunny." and result.stop_reason == "end_turn"
        assert server.last_body["model"] == "gpt-5.1"
        assert_valid_history(agent.messages)
        assert type(result.raw).__module__.startswith("openai")


def test_a_missing_provider_key_is_one_line(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    agent = Agent(tools=[weather], model="openai:gpt-5.1", env={})
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        agent.run("hi")
    assert_valid_history(agent.messages)
