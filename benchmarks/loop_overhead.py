"""nbagent's loop overhead against a minimal hand-written loop on the raw SDK.

Both drive the same 50-tool-call session (one tool call per response, then a
final answer) against the fake Messages API server, streaming, in one process.
Prints both wall times (median of several runs) and the ratio. Target: <= 1.10.

    python benchmarks/loop_overhead.py [--calls 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anthropic  # noqa: E402
from tests.fake_anthropic import FakeAnthropic, reply, text, tool_use  # noqa: E402

from nbagent import Agent, tool  # noqa: E402

MODEL = "claude-opus-4-8"
SYSTEM = "You are a benchmark."


@tool(read_only=True)
def lookup(key: str) -> str:
    """Look a key up.

    Args:
        key: the key
    """
    return f"value-of-{key}"


def responder_for(calls: int):
    def respond(body: dict):
        done = sum(
            1
            for m in body["messages"]
            if m["role"] == "user" and isinstance(m["content"], list)
            for b in m["content"]
            if b.get("type") == "tool_result"
        )
        if done < calls:
            return reply(text(f"Step {done}."), tool_use("lookup", {"key": f"k{done}"}))
        return reply(text("All values looked up. " * 5))

    return respond


def run_nbagent(calls: int) -> float:
    agent = Agent(model=MODEL, system=SYSTEM, tools=[lookup], max_turns=calls + 5, thinking="off")
    start = time.perf_counter()
    result = agent.run("look up all the keys")
    elapsed = time.perf_counter() - start
    assert len(result.tool_calls) == calls, len(result.tool_calls)
    return elapsed


def run_raw(calls: int) -> float:
    client = anthropic.Anthropic()
    tools = [lookup.to_param()]
    messages: list[dict] = [{"role": "user", "content": "look up all the keys"}]
    start = time.perf_counter()
    n = 0
    while True:
        with client.messages.stream(
            model=MODEL, max_tokens=32_000, system=SYSTEM, tools=tools, messages=messages
        ) as stream:
            for _ in stream:
                pass
            message = stream.get_final_message()
        messages.append({"role": "assistant", "content": message.content})
        if message.stop_reason != "tool_use":
            break
        results = []
        for block in message.content:
            if block.type == "tool_use":
                n += 1
                results.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": block.id,
                        "content": lookup.func(**block.input),
                    }
                )
        messages.append({"role": "user", "content": results})
    elapsed = time.perf_counter() - start
    assert n == calls, n
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with FakeAnthropic() as server:
        os.environ["ANTHROPIC_BASE_URL"] = server.url
        os.environ["ANTHROPIC_API_KEY"] = "sk-ant-benchmark"
        server.responder = responder_for(3)
        run_raw(3)  # warm up: imports, connection pool
        run_nbagent(3)
        server.responder = responder_for(args.calls)
        raw, ours = [], []
        for _ in range(args.repeat):  # interleaved, so drift hits both alike
            raw.append(run_raw(args.calls))
            ours.append(run_nbagent(args.calls))
    raw_s, ours_s = statistics.median(raw), statistics.median(ours)
    print(f"tool calls per session: {args.calls}, runs: {args.repeat} each (median)")
    print(f"raw SDK loop: {raw_s:.3f} s")
    print(f"nbagent:      {ours_s:.3f} s")
    print(f"ratio:        {ours_s / raw_s:.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
