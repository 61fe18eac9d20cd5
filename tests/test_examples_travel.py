"""examples/travel_assistant.py, seed 002's ten scenarios in one conversation, run
against the fake servers: Claude, an OpenAI-compatible model, and a model without native
tools (the xml protocol)."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.fake_anthropic import FakeAnthropic, Reply, reply, text
from tests.fake_anthropic import tool_use as native_call
from tests.fake_openai import FakeOpenAI
from tests.helpers import assert_valid_history

pytestmark = pytest.mark.usefixtures("in_tmp")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "travel_assistant.py"
MAX_TURNS = 3


@pytest.fixture(scope="module")
def travel() -> ModuleType:
    spec = importlib.util.spec_from_file_location("travel_assistant", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["travel_assistant"] = module
    spec.loader.exec_module(module)
    return module


def script(xml: bool) -> list[Reply | str]:
    """What the model answers to the ten scenarios, with tool calls native or in text."""

    def calls(*pairs: tuple[str, dict[str, Any]], say: str = "") -> Reply:
        if not xml:
            return reply(*([text(say)] if say else []), *[native_call(n, a) for n, a in pairs])
        blocks = "\n".join(
            f"<tool_call>\n{json.dumps({'name': n, 'arguments': a})}\n</tool_call>"
            for n, a in pairs
        )
        return reply(text(f"{say}\n{blocks}" if say else blocks, chunk=9))

    weather = "get_weather"
    flights = "get_flight_prices"
    places = ["Australia", "Belarus", "Caribbean"]
    return [
        # 1. what it does: no tools
        "I help you plan trips: weather, flight prices and currency exchange.",
        # 2. one tool call
        calls((weather, {"city": "Tokyo"}), say="Let me check."),
        "Tokyo is cloudy, 18 °C.",
        # 3. missing information: a question back
        "Which city is your favorite?",
        # 4. the answer completes it
        calls((weather, {"city": "New York"})),
        "New York is cloudy, 6 °C.",
        # 5. a missing parameter (the date)
        "What date do you want to fly?",
        # 6. the date completes the call
        calls((flights, {"origin": "NYC", "destination": "Paris", "date": "2026-06-15"})),
        "Economy is a few hundred dollars.",
        # 7. two calls at once
        calls(
            (weather, {"city": "Tokyo"}),
            (flights, {"origin": "London", "destination": "Tokyo", "date": "2026-07-10"}),
        ),
        "Tokyo will be cloudy; economy is 802 USD.",
        # 8. the three main tools
        calls(
            (weather, {"city": "Paris"}),
            (flights, {"origin": "NYC", "destination": "Paris", "date": "2026-07-01"}),
            (
                "get_currency_exchange",
                {"from_currency": "USD", "to_currency": "EUR", "amount": 1000},
            ),
        ),
        "Here is your Paris plan.",
        # 9. one place per round until the round limit; then the final answer
        *[calls((weather, {"city": p})) for p in places],
        "I checked Australia, Belarus and Caribbean before the limit.",
        # 10. the tool raises: the model is told
        calls(("divide_by_secret_number", {"number": 17})),
        "The secret number is zero, so 17 cannot be divided by it.",
    ]


@pytest.fixture(params=["anthropic", "openai", "xml"])
def served(request, monkeypatch) -> Iterator[tuple[str, Any]]:
    """(model name, fake server) for each way the example can run."""
    if request.param == "anthropic":
        with FakeAnthropic() as server:
            monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
            monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake")
            server.enqueue(*script(xml=False))
            yield "claude-opus-4-8", server
        return
    with FakeOpenAI() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
        server.enqueue(*script(xml=request.param == "xml"))
        yield ("openai:gpt-5.1" if request.param == "openai" else "openai:gemma3"), server


def test_the_ten_scenarios_on_each_provider(travel, served):
    model, server = served
    agent = travel.build_agent(model, max_turns=MAX_TURNS)
    out = io.StringIO()
    answers = travel.run_scenarios(agent, out=out)
    printed = out.getvalue()

    assert len(answers) == 10 and server.pending == 0, "every scripted answer was used"
    assert answers[0].startswith("I help you plan trips")
    assert answers[2] == "Which city is your favorite?"
    assert answers[4] == "What date do you want to fly?"
    assert "[TOOL] get_weather(city='Tokyo')" in printed
    assert "[RESULT] Tokyo: " in printed
    assert (
        "[TOOL] get_flight_prices(origin='NYC', destination='Paris', date='2026-06-15')" in printed
    )
    assert '"economy_usd": ' in printed, "a dict result reaches the model as JSON"
    assert "[TOOL] get_currency_exchange(" in printed and '"converted": ' in printed
    assert f"Reached the limit of {MAX_TURNS} tool rounds" in printed
    assert answers[8].startswith("I checked Australia")
    assert "[ERROR] Error: divide_by_secret_number raised ZeroDivisionError" in printed
    assert answers[9].startswith("The secret number is zero")

    # one conversation: the last request carries every scenario
    last = json.dumps(server.requests[-1]["body"]["messages"])
    assert all(json.dumps(s)[1:-1] in last for s in travel.SCENARIOS)
    assert "ZeroDivisionError" in last, "the error went back to the model"
    assert_valid_history(agent.messages)


def test_main_runs_chosen_scenarios_quietly(travel, monkeypatch, capsys):
    with FakeOpenAI() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
        server.enqueue(reply(native_call("get_weather", {"city": "Tokyo"})), "Sunny.")
        assert travel.main(["--model", "openai:gpt-5.1", "--scenario", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "USER: What's the weather in Tokyo?" in printed and "Sunny." in printed
    assert "[TOOL]" not in printed
    assert "cost $" in printed, "gpt-5.1 has a price in the model table"


def test_the_mock_tools_are_deterministic(travel):
    assert travel.get_weather.func("Tokyo") == travel.get_weather.func("Tokyo")
    assert travel.get_weather.func("tokyo").endswith("°C")
    one = travel.get_flight_prices.func("NYC", "Paris", "2026-06-15")
    assert one == travel.get_flight_prices.func("NYC", "Paris", "2026-06-15")
    with pytest.raises(ZeroDivisionError):
        travel.divide_by_secret_number.func(17)
