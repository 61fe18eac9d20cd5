"""Seed 002's Travel Assistant, on any provider: ten scenarios in one conversation.

    python examples/travel_assistant.py                            # Claude (ANTHROPIC_API_KEY)
    python examples/travel_assistant.py --model openai:gpt-5.1     # OPENAI_API_KEY
    python examples/travel_assistant.py --model openrouter:anthropic/claude-opus-4.8
    python examples/travel_assistant.py --model gemini:gemini-2.5-flash
    python examples/travel_assistant.py --model ollama:qwen3       # local, OLLAMA_HOST
    python examples/travel_assistant.py --model ollama:gemma3      # no native tools: xml protocol
    python examples/travel_assistant.py --model ollama:llama3.2 --tool-protocol xml

Four tools with mock data, so no other key is needed: the weather (deterministic, by the
city's first letter), flight prices and exchange rates (pseudo-random, stable per
question), and a division by a "secret number" that is zero, to show how a tool's error
reaches the model. With demo mode on (the default) each tool call and result is printed.

The scenarios (seed 002, "Demo"): what the agent does, a single tool call, a question
with missing information, a follow-up that supplies it, a flight with no date, the date,
two tool calls at once, all three main tools, so many places that the tool-round limit
is reached and the agent answers from what it has, and a tool that raises.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from collections.abc import Sequence
from typing import Any

from nbagent import Agent, Tool, tool
from nbagent.events import Notice, TextDelta, ToolCallEvent, ToolResultEvent, TurnEnd

NAME = "Travel Assistant"
DESCRIPTION = (
    "helps travellers plan trips: the weather at a destination, flight prices and currency exchange"
)
PROMPT = f"""\
You are {NAME}, an assistant that {DESCRIPTION}.
Use your tools as soon as a question needs their data, and call several at once when \
they do not depend on each other. When a tool needs information the user has not given \
(a city, a travel date), ask for it instead of guessing. When a tool fails, say what \
happened and suggest what the user can do. Answer briefly, in plain text."""

SCENARIOS: tuple[str, ...] = (
    "What do you do?",
    "What's the weather in Tokyo?",
    "What's the weather in my favorite city?",
    "My favorite city is New York",
    "How much is a flight from NYC to Paris",
    "It's June 15",
    "I want to go from London to Tokyo next month, on the 10th. What's the weather there "
    "and how much is the flight?",
    "Plan a trip from NYC to Paris on July 1st: the weather, the flight, and what 1000 USD "
    "is in euros.",
    "Tell me the weather in Australia, Belarus, Caribbean, Denmark, Egypt, France, Greece, "
    "Hungary, India, Japan, Kenya and Lebanon.",
    "Divide 17 by the secret number!",
)

# --------------------------------------------------------------------------- tools (mock data)

_WEATHER = ("sunny", "cloudy", "rainy", "windy", "snowy", "foggy")


def _stable_random(*parts: str) -> float:
    """A number in [0, 1) that is the same for the same question (zlib, not hash())."""
    return zlib.crc32("|".join(parts).lower().encode()) / 2**32


@tool(read_only=True)
def get_weather(city: str) -> str:
    """Get the current weather in a city.

    Args:
        city: the city (or region, or country), e.g. "Tokyo"
    """
    letter = (city.strip()[:1] or "a").lower()
    index = ord(letter) - ord("a") if letter.isalpha() else 0
    temperature = 5 + (index * 7) % 30
    return f"{city}: {_WEATHER[index % len(_WEATHER)]}, {temperature} °C"


@tool(read_only=True)
def get_flight_prices(origin: str, destination: str, date: str) -> dict[str, Any]:
    """Get the prices of flights between two cities on a date.

    Args:
        origin: the city of departure
        destination: the city of arrival
        date: the travel date, e.g. "2026-06-15"
    """
    base = 150 + int(_stable_random(origin, destination, date) * 900)
    return {
        "origin": origin,
        "destination": destination,
        "date": date,
        "economy_usd": base,
        "business_usd": base * 3,
    }


def _exchange(from_currency: str, to_currency: str, amount: float = 1.0) -> dict[str, Any]:
    rate = round(0.5 + _stable_random(from_currency, to_currency) * 1.5, 4)
    return {
        "from": from_currency.upper(),
        "to": to_currency.upper(),
        "rate": rate,
        "amount": amount,
        "converted": round(amount * rate, 2),
    }


# A tool from a raw JSON schema and a function (seed 003's Tool), to show both ways.
get_currency_exchange = Tool.from_schema(
    "get_currency_exchange",
    "Get the exchange rate between two currencies, and convert an amount.",
    {
        "type": "object",
        "properties": {
            "from_currency": {"type": "string", "description": "ISO code, e.g. USD"},
            "to_currency": {"type": "string", "description": "ISO code, e.g. EUR"},
            "amount": {"type": "number", "description": "amount to convert (default 1)"},
        },
        "required": ["from_currency", "to_currency"],
    },
    _exchange,
    read_only=True,
)

SECRET_NUMBER = 0


@tool(read_only=True)
def divide_by_secret_number(number: float) -> str:
    """Divide a number by the secret number.

    Args:
        number: the number to divide
    """
    return str(number / SECRET_NUMBER)  # raises ZeroDivisionError: the model is told


TOOLS = [get_weather, get_flight_prices, get_currency_exchange, divide_by_secret_number]

# --------------------------------------------------------------------------- agent


def build_agent(
    model: str, *, max_turns: int = 5, tool_protocol: str | None = None, **options: Any
) -> Agent:
    """The Travel Assistant on `model` (`provider:model`; a bare name is Claude)."""
    from nbagent.config import resolve
    from nbagent.providers.registry import ANTHROPIC, make_provider, parse_model_name

    provider_name, bare_model = parse_model_name(model)
    provider = None
    if provider_name != ANTHROPIC or tool_protocol == "xml":
        # Built here until `Agent(model="openai:gpt-5.1")` routes names by itself.
        settings = resolve({"model": model, "tool_protocol": tool_protocol, **options})
        provider = make_provider(provider_name, settings)
    return Agent(
        model=bare_model,
        system=PROMPT,
        tools=TOOLS,
        max_turns=max_turns,
        provider=provider,
        **options,
    )


def run_scenarios(
    agent: Agent, scenarios: Sequence[str] = SCENARIOS, *, demo: bool = True, out: Any = None
) -> list[str]:
    """Run each scenario as the next user message of one conversation; returns the answers."""
    out = out or sys.stdout
    answers = []
    for number, prompt in enumerate(scenarios, 1):
        print(f"\n=== {number}. USER: {prompt}", file=out)
        print("ASSISTANT: ", end="", file=out, flush=True)
        line_open = True  # text printed since the last newline

        def line(text: str) -> None:
            nonlocal line_open
            print(("\n" if line_open else "") + text, file=out)
            line_open = False

        for event in agent.stream(prompt):
            if isinstance(event, TextDelta):
                print(event.text, end="", file=out, flush=True)
                line_open = True
            elif demo and isinstance(event, ToolCallEvent):
                args = ", ".join(f"{k}={v!r}" for k, v in event.call.input.items())
                line(f"  [TOOL] {event.call.name}({args})")
            elif demo and isinstance(event, ToolResultEvent):
                label = "ERROR" if event.output.is_error else "RESULT"
                line(f"  [{label}] {event.output.text()}")
            elif isinstance(event, Notice) and event.level == "warning":
                line(f"  [NOTE] {event.text}")
            elif isinstance(event, TurnEnd) and event.stop_reason == "error":
                line(f"  [FAILED] {event.message}")
        if line_open:
            print(file=out)
        answers.append(agent.session.last_run.text)
    usage = agent.usage
    cost = "unknown" if usage.cost_usd is None else f"${usage.cost_usd:.4f}"
    print(
        f"\n{usage.input_total:,} input tokens ({usage.cache_read_input_tokens:,} cached), "
        f"{usage.output_tokens:,} output tokens, cost {cost}",
        file=out,
    )
    return answers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="claude-opus-4-8", help="provider:model")
    parser.add_argument("--max-turns", type=int, default=5, help="tool rounds per scenario")
    parser.add_argument("--tool-protocol", choices=("auto", "native", "xml"), default=None)
    parser.add_argument("--scenario", type=int, action="append", help="run only these (1-10)")
    parser.add_argument("--quiet", action="store_true", help="demo mode off: no tool lines")
    args = parser.parse_args(argv)
    picked = [SCENARIOS[n - 1] for n in args.scenario] if args.scenario else SCENARIOS
    agent = build_agent(args.model, max_turns=args.max_turns, tool_protocol=args.tool_protocol)
    run_scenarios(agent, picked, demo=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
