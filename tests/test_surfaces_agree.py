"""Every surface is a view of one event stream (issue 7).

One scripted turn (thinking, an answer, fixed usage) runs on each surface against the
fake Messages API, which omits thinking text unless the request asks for
`display: "summarized"`, as the real API does for the default model:

- the cell output of a `%%agent` cell, executed by nbclient, and `%agent usage`;
- the widget panel (`nbagent.chat()`), in the same kernel;
- the JupyterLab sidebar: the turn the labextension starts (`sidebar_turn`), seen as
  the messages on the events comm by a stand-in registered as the labextension does;
- the terminal: `nbagent run` in a subprocess.

Each shows the thinking, and the same usage line: `format_usage`'s, as defined by
tests/fixtures/usage_format.json (the sidebar's line is formatted by the
labextension's usage.ts from the numbers the kernel sent). The last part checks that
`Agent(...)`, the `NBAgent` traits, the `%%agent` flags and the `nbagent` flags all
come from `nbagent.options.OPTIONS`.
"""

from __future__ import annotations

import html
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from nbagent.config import ENV_NAMES, resolve
from nbagent.events import Usage
from nbagent.models import cost_usd
from nbagent.options import AGENT_OPTIONS, CLI_OPTIONS, KERNEL, OPTIONS, TURN_OPTIONS, Option
from nbagent.render.format import format_usage
from nbagent.transport import protocol
from tests.fake_anthropic import FakeAnthropic, env_for, reply, text, thinking

ROOT = Path(__file__).resolve().parent.parent
USAGE_JS = ROOT / "labextension" / "lib" / "usage.js"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "usage_format.json"

DEFAULT_MODEL = "claude-opus-4-8"
SUMMARIZED = {"type": "adaptive", "display": "summarized"}
THOUGHT = "Weighing the quarterly numbers against last year before answering"
ANSWER = "Revenue grew by a tenth."
# Uncached, cache writes and reads all count as input: 20,000 in, 90% of it cached.
USAGE = {
    "input_tokens": 10,
    "output_tokens": 2048,
    "cache_creation_input_tokens": 1990,
    "cache_read_input_tokens": 18000,
}
PROMPT = "How did revenue do?"

FRESH = """\
from nbagent.jupyter.settings import NBAgent as _NBAgent
for _c in get_ipython().configurables:
    if isinstance(_c, _NBAgent):
        for _name in _c.trait_names(config=True):
            setattr(_c, _name, None)
get_ipython().run_line_magic("agent", "reset")
del _c, _name, _NBAgent
"""


def scripted_turn() -> Any:
    return reply(thinking(THOUGHT, chunk=9), text(ANSWER), usage=USAGE)


def reference_line(usage: dict[str, Any]) -> str:
    """tests/fixtures/usage_format.json's definition, written out independently."""
    total = (
        usage["input_tokens"]
        + usage["cache_creation_input_tokens"]
        + usage["cache_read_input_tokens"]
    )
    cached = round(100 * usage["cache_read_input_tokens"] / total) if total > 0 else 0
    cost = "cost unknown" if usage["cost_usd"] is None else f"${usage['cost_usd']:.4f}"
    return f"{total:,} in ({cached}% cached) · {usage['output_tokens']:,} out · {cost}"


EXPECTED_LINE = reference_line({**USAGE, "cost_usd": cost_usd(DEFAULT_MODEL, **USAGE)})


# --------------------------------------------------------------------------- the kernel


class Lab:
    """A real kernel with a stand-in for the labextension registered on it: a subshell,
    the `nbagent.control` comm opened on it, and every message of `nbagent.events` kept."""

    def __init__(self, km: KernelManager) -> None:
        self.km = km
        self.kc = km.blocking_client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.client_id = f"client-{uuid.uuid4().hex[:8]}"
        self.events_comms: set[str] = set()
        self.received: list[dict[str, Any]] = []

    def run(self, code: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Execute `code`; its stream and display outputs (the reply must be ok)."""
        msg_id = self.kc.execute(code, store_history=False, allow_stdin=False)
        outputs: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out running {code!r}"
            try:
                msg = self.kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                continue
            self.keep_events(msg)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] in ("stream", "display_data", "update_display_data", "error"):
                outputs.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        while True:
            answer = self.kc.get_shell_msg(timeout=10)
            if answer["parent_header"].get("msg_id") == msg_id:
                content = answer["content"]
                assert content["status"] == "ok", "\n".join(content.get("traceback", []))[-3000:]
                return outputs

    def printed(self, code: str) -> str:
        return "".join(o["content"].get("text", "") for o in self.run(code))

    def keep_events(self, msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "comm_open" and content.get("target_name") == protocol.EVENTS_TARGET:
            self.events_comms.add(content["comm_id"])
            self.received.append(content["data"])
        elif kind == "comm_msg" and content.get("comm_id") in self.events_comms:
            self.received.append(content["data"])

    def register(self) -> None:
        msg = self.kc.session.msg("create_subshell_request", {})
        self.kc.control_channel.send(msg)
        while True:
            created = self.kc.get_control_msg(timeout=10)
            if created["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                break
        subshell_id = created["content"]["subshell_id"]
        data = {
            "v": protocol.PROTOCOL_VERSION,
            "type": "register",
            "client_id": self.client_id,
            "path": "work/surfaces.ipynb",
            "subshell_id": subshell_id,
        }
        content = {
            "comm_id": uuid.uuid4().hex,
            "target_name": protocol.CONTROL_TARGET,
            "data": data,
        }
        opened = self.kc.session.msg("comm_open", content)
        opened["header"]["subshell_id"] = subshell_id
        self.kc.shell_channel.send(opened)
        self.run(
            "import time\nfrom nbagent.transport.bridge import get_bridge\n"
            "_t0 = time.monotonic()\n"
            "while not get_bridge().clients and time.monotonic() - _t0 < 10: time.sleep(0.01)\n"
            "assert get_bridge().clients"
        )

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def child_env(server: FakeAnthropic) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.update(env_for(server))
    env.update(PYTHONUNBUFFERED="1", TERM="dumb", COLUMNS="120")
    env.pop("MPLBACKEND", None)
    env.pop("JPY_SESSION_NAME", None)
    return env


@dataclass
class Shown:
    """What one surface showed of the scripted turn, and what its turn sent."""

    text: str
    usage_line: str
    request: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def _plain(bundle: dict[str, Any]) -> str:
    return str(bundle.get("text/plain", ""))


def cell_surface(lab: Lab, server: FakeAnthropic, workdir: Path) -> tuple[Shown, Shown]:
    """`%%agent` and then `%agent usage`, run by nbclient as a headless notebook run is."""
    lab.run(FRESH)
    server.enqueue(scripted_turn())
    nb = new_notebook()
    nb.cells = [new_code_cell(f"%%agent\n{PROMPT}"), new_code_cell("%agent usage")]
    NotebookClient(
        nb, km=lab.km, timeout=60, resources={"metadata": {"path": str(workdir)}}
    ).execute()
    nbformat.validate(nb)
    request = server.last_body
    assert request is not None
    cell_text = "\n".join(
        _plain(o.get("data", {})) + o.get("text", "") for o in nb.cells[0].outputs
    )
    footer = re.search(r"^-- (.+) · \d+\.\d+s$", cell_text, re.M)
    assert footer, f"no usage footer in the cell output:\n{cell_text}"
    usage_out = "".join(o.get("text", "") for o in nb.cells[1].outputs).strip()
    assert usage_out.startswith("Session: "), usage_out
    cell = Shown(cell_text, footer.group(1), request, {"outputs": nb.cells[0].outputs})
    return cell, Shown(usage_out, usage_out.removeprefix("Session: "), request)


def panel_surface(lab: Lab, server: FakeAnthropic) -> Shown:
    lab.run(FRESH)
    server.enqueue(scripted_turn())
    out = lab.printed(
        "import json, nbagent\n"
        "_p = nbagent.chat()\n"
        f"_p.send({PROMPT!r})\n"
        "assert _p.wait(30)\n"
        "print(json.dumps({'html': _p.history_html(), 'usage': _p.usage_label.value}))"
    )
    shown = json.loads(out.strip().splitlines()[-1])
    label = html.unescape(re.sub(r"<[^>]+>", "", shown["usage"])).strip()
    request = server.last_body
    assert request is not None
    return Shown(html.unescape(shown["html"]), label, request)


def sidebar_surface(lab: Lab, server: FakeAnthropic) -> Shown:
    lab.run(FRESH)
    server.enqueue(scripted_turn())
    start = len(lab.received)
    payload = json.dumps({"prompt": PROMPT, "client_id": lab.client_id, "path": "x"})
    lab.run(
        f"__import__('nbagent.jupyter.bridge', fromlist=['sidebar_turn']).sidebar_turn({payload!r})"
    )
    messages = lab.received[start:]
    events = [m["event"] for m in messages if m["type"] == "agent_event"]
    assert {m["source"] for m in messages if m["type"] == "agent_event"} == {"sidebar"}
    states = [m for m in messages if m["type"] == "state"]
    assert states and states[-1]["busy"] is False, states
    final = states[-1]["usage"]
    thought = "".join(e["text"] for e in events if e["type"] == "thinking_delta")
    answer = "".join(e["text"] for e in events if e["type"] == "text_delta")
    request = server.last_body
    assert request is not None
    return Shown(
        thought + "\n" + answer,
        format_in_typescript(final),
        request,
        {"state_usage": final, "usage_events": [e for e in events if e["type"] == "usage"]},
    )


def format_in_typescript(usage: dict[str, Any]) -> str:
    """The sidebar's line: the labextension's own `formatUsage`, run by Node."""
    node = shutil.which("node")
    assert node, "Node.js runs the labextension's usage.ts"
    assert USAGE_JS.is_file(), "build the labextension first (scripts/build_labextension.sh)"
    script = (
        f"import {{ formatUsage }} from {json.dumps(USAGE_JS.as_uri())};\n"
        f"console.log(formatUsage({json.dumps(usage)}));\n"
    )
    proc = subprocess.run(
        [node, "--no-warnings", "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def terminal_surface(server: FakeAnthropic, workdir: Path) -> Shown:
    server.enqueue(scripted_turn())
    proc = subprocess.run(
        [sys.executable, "-m", "nbagent.cli.main", "run", PROMPT, "--verbose"],
        cwd=workdir,
        env=child_env(server),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    footer = re.search(r"^─ (.+) · \d+\.\d+s$", proc.stderr, re.M)
    assert footer, f"no usage footer on stderr:\n{proc.stderr}"
    request = server.last_body
    assert request is not None
    return Shown(proc.stderr + proc.stdout, footer.group(1), request)


@pytest.fixture(scope="module")
def surfaces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Shown]]:
    """The scripted turn, once on every surface (one kernel for the notebook ones)."""
    workdir = tmp_path_factory.mktemp("surfaces")
    with FakeAnthropic() as server:
        km = KernelManager(kernel_name="python3")
        km.start_kernel(env=child_env(server), cwd=str(workdir))
        lab = Lab(km)
        try:
            lab.run("%load_ext nbagent")
            lab.register()
            cell, usage_magic = cell_surface(lab, server, workdir)
            shown = {
                "cell": cell,
                "%agent usage": usage_magic,
                "panel": panel_surface(lab, server),
                "sidebar": sidebar_surface(lab, server),
                "terminal": terminal_surface(server, workdir),
            }
        finally:
            lab.stop()
        yield shown


THINKING_SURFACES = ("cell", "panel", "sidebar", "terminal")


@pytest.mark.parametrize("surface", THINKING_SURFACES)
def test_thinking_of_the_default_model_is_shown(surfaces, surface):
    shown = surfaces[surface]
    assert shown.request["model"] == DEFAULT_MODEL
    assert shown.request["thinking"] == SUMMARIZED
    assert THOUGHT in shown.text, f"the {surface} did not show the thinking:\n{shown.text}"
    assert ANSWER in shown.text


def test_the_cell_shows_thinking_in_every_output_format(surfaces):
    """nbclient keeps text/plain; the labextension renders its MIME type."""
    outputs = surfaces["cell"].extra["outputs"]
    turns = [o["data"]["application/vnd.nbagent.turn+json"] for o in outputs if "data" in o]
    turns = [t for t in turns if t]
    assert turns, "no nbagent turn output"
    blocks = [b for t in turns for b in t["blocks"]]
    assert [b["text"] for b in blocks if b["kind"] == "thinking"] == [THOUGHT]


def test_the_definition_of_the_usage_line():
    """The expected line follows the shared fixture (every input token counts)."""
    fixture = json.loads(FIXTURE.read_text(encoding="utf-8"))
    for case in fixture["cases"]:
        assert reference_line(case["usage"]) == case["line"]
        assert format_usage(Usage(**case["usage"])) == case["line"]
    assert EXPECTED_LINE.startswith("20,000 in (90% cached) · 2,048 out · $")


def test_one_turns_usage_reads_the_same_on_every_surface(surfaces):
    lines = {name: shown.usage_line for name, shown in surfaces.items()}
    assert lines == dict.fromkeys(surfaces, EXPECTED_LINE)


def test_the_numbers_sent_to_the_sidebar_are_the_turns(surfaces):
    extra = surfaces["sidebar"].extra
    state = extra["state_usage"]
    assert {k: state[k] for k in USAGE} == USAGE
    assert state["cost_usd"] == pytest.approx(cost_usd(DEFAULT_MODEL, **USAGE))
    [event] = extra["usage_events"]
    assert {k: event[k] for k in USAGE} == USAGE
    assert event["cost_usd"] == pytest.approx(state["cost_usd"])


# --------------------------------------------------------------------------- one option table


SAMPLE_TEXT = {
    "model": "claude-sonnet-4-6",
    "base_url": "http://127.0.0.1:9",
    "api_key": "sk-ant-sample-key",
    "notebook": "analysis.ipynb",
}


def sample(opt: Option, workdir: Path) -> Any:
    """A valid value for `opt` that is not its default, by its kind."""
    if opt.choices:
        return next(c for c in reversed(opt.choices) if c != opt.default)
    if opt.name == "workspace":
        return str(workdir)
    if opt.kind is bool:
        return not opt.default
    if opt.kind is int:
        return int(opt.default or 0) + 7
    if opt.kind is float:
        return float(opt.default or 0) + 1.5
    if opt.kind is list:
        return ["alpha", "beta"]
    if opt.kind is dict:
        return {"example": {"command": "true", "args": []}}
    return SAMPLE_TEXT.get(opt.name, f"a value for {opt.name}")


def as_text(value: Any) -> str:
    """`value` as an environment variable or a command-line flag carries it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def expected(opt: Option, value: Any) -> Any:
    return opt.parse(value, "")


def test_every_option_is_an_nbagent_trait(tmp_path):
    from nbagent.jupyter.settings import NBAgent, configured

    traits = NBAgent.class_traits(config=True)
    assert set(traits) == {o.name for o in OPTIONS}
    config = NBAgent()
    for opt in OPTIONS:
        assert getattr(config, opt.name) is None, f"{opt.name}: None means 'not set here'"
        assert opt.help in (traits[opt.name].help or "")
        value = sample(opt, tmp_path)
        setattr(config, opt.name, value)
    # What the traits hold is what a turn resolves, with IPython config as the source.
    settings = resolve(ipython=configured(config), cwd=tmp_path, env={})
    for opt in OPTIONS:
        assert settings.get(opt.name) == expected(opt, sample(opt, tmp_path)), opt.name
        assert settings.sources[opt.name] == "IPython config"


def test_every_agent_option_is_an_agent_argument(tmp_path):
    from nbagent import Agent

    assert {o.name for o in AGENT_OPTIONS} == {o.name for o in OPTIONS if KERNEL not in o.where}
    for opt in AGENT_OPTIONS:
        value = sample(opt, tmp_path)
        agent = Agent(env={}, **{opt.name: value})
        assert agent.current_settings().get(opt.name) == expected(opt, value), opt.name
        assert agent.current_settings().sources[opt.name] == "argument"
    for opt in OPTIONS:
        if KERNEL in opt.where:
            with pytest.raises(TypeError):
                Agent(env={}, **{opt.name: sample(opt, tmp_path)})


def test_every_option_reads_its_environment_variable(tmp_path):
    for opt in OPTIONS:
        if opt.env is None:
            continue
        value = sample(opt, tmp_path)
        settings = resolve(cwd=tmp_path, env={opt.env: as_text(value)})
        assert settings.get(opt.name) == expected(opt, value), opt.env
        assert settings.sources[opt.name] == "environment"


def test_every_turn_option_is_an_agent_cell_flag(tmp_path):
    from nbagent.jupyter.magics import cell_parser

    parser = cell_parser()
    # The flags that carry an option are exactly the per-turn options.
    dests = {a.dest for a in parser._actions}
    assert dests & {o.name for o in OPTIONS} == {o.name for o in TURN_OPTIONS}
    for opt in TURN_OPTIONS:
        value = as_text(sample(opt, tmp_path))
        args = parser.parse_args([opt.cli_flag, value])
        assert getattr(args, opt.name) == value, opt.cli_flag
        assert expected(opt, getattr(args, opt.name)) == expected(opt, value)


def test_every_cli_option_is_an_nbagent_flag(tmp_path):
    from nbagent.cli.main import build_parser

    parser = build_parser()
    for opt in CLI_OPTIONS:
        value = as_text(sample(opt, tmp_path))
        chat = parser.parse_args([opt.cli_flag, value])
        run = parser.parse_args(["run", "a prompt", opt.cli_flag, value])
        assert getattr(chat, opt.name) == value, opt.cli_flag
        assert getattr(run, opt.name) == value, f"run {opt.cli_flag}"
        assert expected(opt, value) == expected(opt, getattr(run, opt.name))
    # The flags that carry an option are the CLI options (`--workspace` is the CLI's
    # own: its default differs between chat and run).
    dests = {a.dest for a in parser._actions} - {"workspace"}
    assert dests & {o.name for o in OPTIONS} == {o.name for o in CLI_OPTIONS}
