"""Caching over a long analysis session: the cached share of input tokens.

A 30-turn data-analysis session against the fake Messages API, which applies the
API's caching rules (per-model minimum cacheable prefix, 20-block lookback, at most
4 breakpoints) and counts tokens at 4 characters a token. nbagent's own system
prompt and built-in tools are sent, plus three analysis tools. Each turn has one to
three tool rounds (thinking, a text, tool calls, results of 300 to 3,000 tokens);
turn 12 has a round of 12 parallel calls, and turn 20 reaches its turn limit, so the
model is asked for a final answer without tools.

Prints, per model: requests, input tokens (uncached / written to the cache / read
from it), the cached share (goal: >= 90%), tokens per turn, the cost, and the
request after the 12-call round; then the same session with a single moving
breakpoint (nbagent before issue 10) for comparison.

    python benchmarks/long_session.py [--turns 30] [--models claude-opus-4-8,...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fake_anthropic import (  # noqa: E402
    FakeAnthropic,
    cache_minimum,
    reply,
    text,
    thinking,
    tool_use,
)

import nbagent.history  # noqa: E402
from nbagent import Agent, tool  # noqa: E402
from nbagent.events import Usage  # noqa: E402

PARALLEL_TURN = 12
LIMIT_TURN = 20
MODELS = ("claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5", "claude-sonnet-4-5")


@tool(read_only=True)
def describe_column(column: str) -> str:
    """Summary statistics of one column of the current DataFrame.

    Args:
        column: the column name
    """
    stats = "count 48213  mean 2.4187  std 0.3121  min 0.9  25% 2.2  50% 2.41  75% 2.63  max 4.7\n"
    return f"{column}\n" + stats * 12  # about 300 tokens


@tool(read_only=True)
def query(sql: str) -> str:
    """Run a SQL query on the session's DuckDB database and return the first rows.

    Args:
        sql: the query
    """
    row = "2024-03-{d:02d} | north | 1,204.50 | 318 | 0.271 | returning\n"
    return f"{sql}\n" + "".join(row.format(d=d % 28 + 1) for d in range(120))  # ~2,500 tokens


@tool(read_only=True)
def plot_summary(title: str) -> str:
    """Describe the figure just drawn (axes, series, outliers).

    Args:
        title: the figure's title
    """
    return f"Figure '{title}': 3 series, x: month (Jan-Dec), y: revenue; peak in July. " * 8


def analyst(body: dict[str, Any]) -> Any:
    """Plays the model: per prompt, 1-3 rounds of tool calls, then a written answer."""
    messages = body["messages"]
    last = messages[-1]["content"]
    blocks = last if isinstance(last, list) else [{"type": "text", "text": last}]
    # The rounds of this turn so far: tool results since the last prompt.
    rounds = 0
    for message in reversed(messages):
        content = message["content"]
        if message["role"] == "user" and isinstance(content, list):
            if any(b.get("type") == "tool_result" for b in content):
                rounds += 1
                if any(b.get("type") == "text" for b in content):
                    break  # the final-answer request carries a text too
                continue
        if message["role"] == "user":
            break
    prompt = next(
        (
            b["text"]
            for m in reversed(messages)
            if m["role"] == "user" and isinstance(m["content"], list)
            for b in m["content"]
            if b.get("type") == "text" and b["text"].startswith("turn ")
        ),
        "turn 0",
    )
    turn = int(prompt.split()[1].rstrip(":"))
    wanted = 1 + turn % 3
    if any("Do not call any more tools" in b.get("text", "") for b in blocks):
        return reply(thinking("Answer with what I have."), text("From what I have: " * 30))
    if rounds >= wanted and turn != LIMIT_TURN:
        return reply(
            thinking("The results are consistent."),
            text("Revenue grew 12% year on year; July is the peak. " * 25),
        )
    if turn == PARALLEL_TURN and rounds == 0:
        calls = [tool_use("describe_column", {"column": f"col_{i}"}) for i in range(12)]
        return reply(thinking("Describe every column at once."), text("All columns."), *calls)
    tools = [
        tool_use("query", {"sql": f"SELECT * FROM sales WHERE turn = {turn}"}),
        tool_use("describe_column", {"column": f"revenue_{turn}"}),
        tool_use("plot_summary", {"title": f"Revenue, turn {turn}"}),
    ]
    return reply(thinking("Next step of the analysis."), text("Looking."), tools[rounds % 3])


def run_session(model: str, turns: int, server: FakeAnthropic) -> dict[str, Any]:
    server.clear()
    server.clear_cache()
    server.responder = analyst
    agent = Agent(model=model, max_retries=0, thinking="off", max_turns=6)
    agent.add_tools([describe_column, query, plot_summary])
    usage = Usage()
    after_round: Usage | None = None
    final: Usage | None = None
    for turn in range(turns):
        overrides = {"max_turns": 1} if turn == LIMIT_TURN else {}
        events = list(agent.stream(f"turn {turn}: continue the analysis", **overrides))
        used = [e for e in events if isinstance(e, Usage)]
        for u in used:
            usage = usage + u
        if turn == PARALLEL_TURN:
            after_round = used[1]  # the request that sends the 12 results
        if turn == LIMIT_TURN:
            final = used[-1]  # the request asking for the final answer
    requests = sum(1 for r in server.requests if r["path"] == "/v1/messages")
    return {"usage": usage, "after_round": after_round, "final": final, "requests": requests}


def report(model: str, turns: int, result: dict[str, Any]) -> None:
    u: Usage = result["usage"]
    share = u.cache_read_input_tokens / u.input_total if u.input_total else 0.0
    r: Usage = result["after_round"]
    f: Usage = result["final"]
    cost = f"${u.cost_usd:.2f}" if u.cost_usd is not None else "unknown"
    print(
        f"  {model:<18} min {cache_minimum(model):>4}  requests {result['requests']:>3}  "
        f"input {u.input_total:>9,} (uncached {u.input_tokens:>7,}, written "
        f"{u.cache_creation_input_tokens:>7,}, read {u.cache_read_input_tokens:>9,})  "
        f"cached {share:6.1%}  per turn: {u.input_total // turns:>6,} in, "
        f"{u.output_tokens // turns:>4,} out  {cost}"
    )
    print(
        f"  {'':<18} after the 12-call round: read {r.cache_read_input_tokens:,}, "
        f"written {r.cache_creation_input_tokens:,} ({r.cached_share:.0%} cached); "
        f"final answer at the turn limit: read {f.cache_read_input_tokens:,}, written "
        f"{f.cache_creation_input_tokens:,} ({f.cached_share:.0%} cached)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # older models' notices
    with FakeAnthropic() as server, tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)
        os.environ["ANTHROPIC_BASE_URL"] = server.url
        os.environ["ANTHROPIC_API_KEY"] = "sk-ant-fake-benchmark"
        print(f"{args.turns}-turn analysis session, 3 conversation breakpoints (issue 10):")
        shares = []
        for model in models:
            result = run_session(model, args.turns, server)
            report(model, args.turns, result)
            u = result["usage"]
            shares.append(u.cache_read_input_tokens / u.input_total)
        print(f"lowest cached share: {min(shares):.1%} (goal >= 90%)")
        print("\nThe same session with one moving breakpoint (before issue 10):")
        nbagent.history.MESSAGE_BREAKPOINTS = 1
        for model in models:
            report(model, args.turns, run_session(model, args.turns, server))


if __name__ == "__main__":
    main()
