"""nbagent's loop on the OpenAI-compatible provider against a hand-written loop on the raw
`openai` SDK.

Both drive the same 50-tool-call session (one tool call per response, then a final
answer) against the fake Chat Completions server, streaming, in one process. Prints both
wall times (median and best of several interleaved runs) and their ratios, and the ratio
of CPU time (the process's, fake server included, alike for both), which other load on
the machine disturbs least. Target: <= 1.10.

    python benchmarks/loop_overhead_openai.py [--calls 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai  # noqa: E402
from tests.fake_anthropic import reply, text, tool_use  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402

from nbagent import Agent, tool  # noqa: E402
from nbagent.providers.openai_compat import OpenAICompatProvider  # noqa: E402

MODEL = "gpt-5.1"
SYSTEM = "You are a benchmark."
KEY = "sk-benchmark"


@tool(read_only=True)
def lookup(key: str) -> str:
    """Look a key up.

    Args:
        key: the key
    """
    return f"value-of-{key}"


def responder_for(calls: int):
    def respond(body: dict[str, Any]):
        done = sum(1 for m in body["messages"] if m["role"] == "tool")
        if done < calls:
            return reply(text(f"Step {done}."), tool_use("lookup", {"key": f"k{done}"}))
        return reply(text("All values looked up. " * 5))

    return respond


def run_nbagent(url: str, calls: int) -> tuple[float, float]:
    provider = OpenAICompatProvider(api_key=KEY, base_url=url)
    agent = Agent(
        model=MODEL, system=SYSTEM, tools=[lookup], max_turns=calls + 5, provider=provider
    )
    start, cpu = time.perf_counter(), time.process_time()
    result = agent.run("look up all the keys")
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    assert len(result.tool_calls) == calls, len(result.tool_calls)
    return elapsed


def run_raw(client: openai.OpenAI, calls: int) -> tuple[float, float]:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": lookup.description,
                "parameters": lookup.to_param()["input_schema"],
            },
        }
    ]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "look up all the keys"},
    ]
    start, cpu = time.perf_counter(), time.process_time()
    n = 0
    while True:
        content: list[str] = []
        pending: dict[int, dict[str, Any]] = {}
        finish = None
        with client.chat.completions.create(
            model=MODEL,
            messages=messages,  # type: ignore[arg-type]
            tools=tools,  # type: ignore[arg-type]
            max_completion_tokens=32_000,
            stream=True,
            stream_options={"include_usage": True},
        ) as stream:
            for chunk in stream:
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        content.append(delta.content)
                    for tc in delta.tool_calls or []:
                        slot = pending.setdefault(tc.index, {"id": "", "name": "", "args": []})
                        slot["id"] = tc.id or slot["id"]
                        if tc.function and tc.function.name:
                            slot["name"] += tc.function.name
                        if tc.function and tc.function.arguments:
                            slot["args"].append(tc.function.arguments)
                    finish = choice.finish_reason or finish
        tool_calls = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": "".join(c["args"])},
            }
            for c in pending.values()
        ]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(content)}
        if tool_calls:
            message["tool_calls"] = tool_calls
        messages.append(message)
        if finish != "tool_calls":
            break
        for call in tool_calls:
            n += 1
            args = json.loads(call["function"]["arguments"])
            messages.append(
                {"role": "tool", "tool_call_id": call["id"], "content": lookup.func(**args)}
            )
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    assert n == calls, n
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with FakeOpenAI() as server:
        client = openai.OpenAI(api_key=KEY, base_url=server.url)
        server.responder = responder_for(3)
        run_raw(client, 3)  # warm up: imports, connection pool
        run_nbagent(server.url, 3)
        server.responder = responder_for(args.calls)
        raw, ours = [], []
        for _ in range(args.repeat):  # interleaved, so drift hits both alike
            raw.append(run_raw(client, args.calls))
            ours.append(run_nbagent(server.url, args.calls))
    raw_s, ours_s = (statistics.median(r[0] for r in runs) for runs in (raw, ours))
    raw_best, ours_best = (min(r[0] for r in runs) for runs in (raw, ours))
    raw_cpu, ours_cpu = (statistics.median(r[1] for r in runs) for runs in (raw, ours))
    print(f"tool calls per session: {args.calls}, runs: {args.repeat} each")
    print(f"raw openai SDK loop: {raw_s:.3f} s median, {raw_best:.3f} s best, {raw_cpu:.3f} s CPU")
    print(
        f"nbagent (openai):    {ours_s:.3f} s median, {ours_best:.3f} s best, {ours_cpu:.3f} s CPU"
    )
    print(
        f"ratio:               {ours_s / raw_s:.3f} median, {ours_best / raw_best:.3f} best, "
        f"{ours_cpu / raw_cpu:.3f} CPU  (target <= 1.10)"
    )


if __name__ == "__main__":
    main()
