"""How long the first `%%agent` cell of a new kernel waits for its first text.

Everything runs through real kernels (jupyter_client), side by side in one run,
against the same local fake Messages API (tests/fake_anthropic.py). Each figure
is the median over `--repeat` fresh kernels, timed from the cell's `busy` status
to the first output that shows the model's text (the kernel's own message times):

- raw SDK cold start: `import anthropic`, a client, `messages.stream`, first token;
- nbagent, first cell run 2 s (and 3 s) after `%load_ext nbagent` (target <= 150 ms
  at 2 s), with the range: how soon the warm-up is ready depends on how fast this
  machine imports the SDK (its report says when it was ready for a turn);
- nbagent, first cell run at once after `%load_ext` (Run All; target <= 1.1x raw);
- the next plain cell run at once after `%load_ext`, and during the warm-up,
  against the same cell in a kernel without the extension: from when the kernel
  could start it (sent, or the cell before it done) to its end, so a warm-up step
  that delays its start counts.

On a shared machine the wall times swing with the load; the kernel's CPU time for
the raw SDK cell and the Run All `%%agent` cell (taken in the kernel by IPython's
pre/post_run_cell events) gives the ratio without that noise.

    python benchmarks/first_token.py [--repeat 3] [--pause 2 3]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jupyter_client.manager import KernelManager  # noqa: E402
from tests.fake_anthropic import FakeAnthropic, reply, text  # noqa: E402

ANSWER = "Hello from the fake model, streaming its first words."
MARKER = ANSWER[:5]  # in the first streamed piece
# The raw SDK sends the same kind of request nbagent sends for the model: the beta
# client with nbagent's betas and context management when nbagent uses them.
RAW_SDK = """\
import anthropic, json, os
client = anthropic.Anthropic()
beta = json.loads(os.environ["RAW_BETA"])
messages = client.beta.messages if beta else client.messages
with messages.stream(
    model=os.environ["ANTHROPIC_MODEL_NAME"], max_tokens=256,
    messages=[{"role": "user", "content": "say hello"}], **beta,
) as stream:
    for piece in stream.text_stream:
        print(piece, end="", flush=True)
"""
AGENT = "%%agent\nsay hello"
LOAD = "%load_ext nbagent"
# A small plain cell: what a user runs next (its cost with and without the extension).
PLAIN = "import json\ntotal = sum(i * i for i in range(20_000))\nprint(json.dumps(total))"
READY = re.compile(r"ready for a turn after ([0-9.]+) s")
WARMUP_REPORT = "from nbagent.jupyter import warmup; print(warmup.report(get_ipython()))"
# The kernel's CPU seconds at the start and end of every cell after this one.
CPU_SETUP = """\
import time as _time
_cpu = []
get_ipython().events.register("pre_run_cell", lambda info: _cpu.append(_time.process_time()))
get_ipython().events.register("post_run_cell", lambda result: _cpu.append(_time.process_time()))
"""
CPU_REPORT = "print(_cpu[-2] - _cpu[-3])"  # the cell before this one (its own start is last)


@dataclass
class Timing:
    """When the kernel sent one cell's iopub messages (epoch seconds)."""

    sent: float = 0.0  # when the client sent the cell
    ready: float | None = None  # when the kernel could start it: sent, or the cell before idle
    busy: float | None = None
    first_output: float | None = None
    first_text: float | None = None
    idle: float | None = None
    stdout: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def since_busy(self, at: float | None) -> float:
        if at is None or self.busy is None:
            raise RuntimeError(f"cell did not produce that output; errors: {self.errors}")
        return at - self.busy

    @property
    def text_after(self) -> float:
        return self.since_busy(self.first_text)

    @property
    def output_after(self) -> float:
        return self.since_busy(self.first_output)

    @property
    def run_time(self) -> float:
        return self.since_busy(self.idle)

    @property
    def turnaround(self) -> float:
        """From when the kernel could start the cell to its end: a warm-up step that
        delays the start shows here, not in `run_time`."""
        if self.idle is None or self.ready is None:
            raise RuntimeError(f"cell did not finish; errors: {self.errors}")
        return self.idle - self.ready


class Kernel:
    def __init__(self, env: dict[str, str], cwd: str) -> None:
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=cwd, env=env, stderr=subprocess.DEVNULL)
        self.client = self.km.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def send(self, code: str) -> tuple[str, Timing]:
        sent = time.time()
        return self.client.execute(code, store_history=True), Timing(sent=sent)

    def run(self, *codes: str, timeout: float = 120) -> list[Timing]:
        """Send every cell at once (as Run All does) and time each until all are idle."""
        sent = [self.send(code) for code in codes]
        timings = {msg_id: timing for msg_id, timing in sent}
        deadline = time.monotonic() + timeout
        while any(t.idle is None for t in timings.values()):
            try:
                msg = self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise TimeoutError("cells did not finish") from None
                continue
            now = msg["header"]["date"].timestamp()  # when the kernel sent it
            timing = timings.get(msg["parent_header"].get("msg_id"))
            if timing is not None:
                record(timing, msg, now)
        out = [t for _, t in sent]
        for before, timing in zip([None, *out], out, strict=False):
            timing.ready = timing.sent if before is None else max(timing.sent, before.idle or 0)
        return out

    def stop(self) -> None:
        self.client.stop_channels()
        self.km.shutdown_kernel(now=True)


def record(timing: Timing, msg: dict[str, Any], now: float) -> None:
    kind, content = msg["msg_type"], msg["content"]
    if kind == "status":
        state = content["execution_state"]
        if state == "busy" and timing.busy is None:
            timing.busy = now
        elif state == "idle":
            timing.idle = now
        return
    if kind == "error":
        timing.errors.append(f"{content['ename']}: {content['evalue']}")
        return
    if kind not in ("stream", "display_data", "update_display_data", "execute_result"):
        return
    if timing.first_output is None:
        timing.first_output = now
    shown = content.get("text", "") if kind == "stream" else str(content.get("data", {}))
    if kind == "stream" and content.get("name") == "stdout":
        timing.stdout.append(shown)
    if MARKER in shown and timing.first_text is None:
        timing.first_text = now


def fresh(env: dict[str, str], *steps: tuple[str, ...] | float) -> list[Timing]:
    """Run `steps` in a new kernel: a tuple of cells is sent at once, a number is a pause.

    Each kernel works in a new empty folder, as a new user's first notebook: no saved
    conversation (`.nbagent/`) to continue, no `.env`.
    """
    with tempfile.TemporaryDirectory() as cwd:
        return _run_steps(Kernel(env, cwd), steps)


def _run_steps(kernel: Kernel, steps: tuple[tuple[str, ...] | float, ...]) -> list[Timing]:
    try:
        out: list[Timing] = []
        for step in steps:
            if isinstance(step, float):
                time.sleep(step)
            else:
                out += kernel.run(*step)
        return out
    finally:
        kernel.stop()


def beta_options(request: dict[str, Any]) -> dict[str, Any]:
    """The beta options of nbagent's request, for the raw SDK to send the same."""
    body = request["body"] or {}
    headers = {k.lower(): v for k, v in request["headers"].items()}
    betas = [b for b in headers.get("anthropic-beta", "").split(",") if b]
    if not betas and "context_management" not in body:
        return {}
    options: dict[str, Any] = {"betas": betas}
    if "context_management" in body:
        options["context_management"] = body["context_management"]
    return options


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh kernels per figure")
    parser.add_argument(
        "--pause",
        type=float,
        nargs="+",
        default=[2.0, 3.0],
        help="seconds after %%load_ext before the first cell (each is a figure)",
    )
    parser.add_argument("--model", default="claude-opus-4-8", help="for nbagent and the raw SDK")
    args = parser.parse_args()

    with FakeAnthropic() as server:
        server.responder = lambda body: reply(text(ANSWER, chunk=8))
        env = dict(os.environ)
        env.update(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY="sk-ant-fake-benchmark")
        env["ANTHROPIC_MODEL_NAME"] = args.model
        env.pop("MPLBACKEND", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # a real install has its bytecode
        env["RAW_BETA"] = "{}"

        fresh(env, (LOAD, AGENT))  # bytecode and file caches warm
        env["RAW_BETA"] = json.dumps(beta_options(server.requests[-1]))
        fresh(env, (RAW_SDK,))
        raw, at_once, loads = [], [], []
        paused: dict[float, list[float]] = {pause: [] for pause in args.pause}
        warmups: dict[float, list[str]] = {pause: [] for pause in args.pause}
        raw_cpu: list[float] = []
        once_cpu: list[float] = []
        plain_alone, plain_after, plain_during = [], [], []
        for _ in range(args.repeat):
            _, raw_cell, cpu = fresh(env, (CPU_SETUP, RAW_SDK, CPU_REPORT))
            raw.append(raw_cell.text_after)
            raw_cpu.append(float("".join(cpu.stdout)))
            for pause in args.pause:
                load, agent, report = fresh(env, (LOAD,), pause, (AGENT,), (WARMUP_REPORT,))
                loads.append(load.run_time)
                paused[pause].append(agent.text_after)
                warmups[pause].append("".join(report.stdout).strip())
            _, _, agent, cpu = fresh(env, (CPU_SETUP, LOAD, AGENT, CPU_REPORT))
            at_once.append(agent)
            once_cpu.append(float("".join(cpu.stdout)))
            plain_alone.append(fresh(env, ("pass", PLAIN))[1].turnaround)
            plain_after.append(fresh(env, (LOAD, PLAIN))[1].turnaround)
            plain_during.append(fresh(env, (LOAD,), 0.3, (PLAIN,))[1].turnaround)

    med = statistics.median
    raw_s = med(raw)
    once_text = med(t.text_after for t in at_once)
    api = "beta client" if json.loads(env["RAW_BETA"]) else "messages"
    print(f"model {args.model} ({api}); {args.repeat} fresh kernels per figure (medians)")
    print(f"raw SDK cold start (import, client, first token): {ms(raw_s)}")
    print(f"%load_ext nbagent (busy to idle):                 {ms(med(loads))}  (target ~30 ms)")
    for pause, texts in paused.items():
        print(
            f"first %%agent text, {pause:g} s after %load_ext:        {ms(med(texts))}  "
            f"(target <= 150 ms; {min(texts) * 1000:.0f}-{max(texts) * 1000:.0f} ms)"
        )
    print(
        f"first %%agent text, run at once (Run All):        {ms(once_text)}  "
        f"= {once_text / raw_s:.2f} x raw SDK (target <= 1.1)"
    )
    print(
        f"  its first output (status line):                 {ms(med(t.output_after for t in at_once))}"
    )
    print(f"plain cell after a no-op cell (no extension):     {ms(med(plain_alone))}")
    print(f"plain cell run at once after %load_ext:           {ms(med(plain_after))}")
    print(f"plain cell run 0.3 s after %load_ext (warming):   {ms(med(plain_during))}")
    r, o = med(raw_cpu), med(once_cpu)
    print(
        f"kernel CPU for the whole cell: raw SDK {ms(r)}, Run All %%agent {ms(o)} = {o / r:.2f} x"
    )
    ready = [float(m.group(1)) for m in map(READY.search, warmups[max(args.pause)]) if m]
    if ready:
        print(
            f"warm-up ready for a turn (first cell at {max(args.pause):g} s):    {ms(med(ready))} after "
            f"%load_ext ({min(ready):.2f}-{max(ready):.2f} s)"
        )
    for pause, lines in warmups.items():
        for line in lines:
            print(f"warm-up, first cell at {pause:g} s: {line}")


if __name__ == "__main__":
    main()
