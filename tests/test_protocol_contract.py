"""The protocol's one definition (src/nbagent/transport/protocol.schema.json) against
what both sides really send.

- The kernel: a real ipykernel, driven over the Jupyter protocol by a stand-in for
  the labextension (listen, subshell, control comm and register, then replies and
  approvals), runs a sidebar turn, a %%agent cell and a widget-panel turn against the
  fake Messages API, reverts the sidebar turn's changes, and answers a second
  client's register (a page reload) with the conversation. Every message on the
  events comm is validated against the schema, every loop event type and every
  message type must have been seen, the labextension's own parser must accept each
  one, and the events comm must open only with the hello that answers the register.
- The frontend: the builders in labextension/src/protocol.ts (compiled to
  labextension/lib) run in Node; each message they build is validated.
- The TypeScript types: labextension/src/protocolTypes.ts must be what
  scripts/gen_protocol_ts.py generates from the schema now.
- Usage: labextension/src/usage.ts formats every case of tests/fixtures/usage_format.json.

The TypeScript checks need the extension built (`bash scripts/build_labextension.sh`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import queue
import shutil
import subprocess
import time
import typing
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client import KernelManager

from nbagent import events as ev
from nbagent.transport import bridge as transport_bridge
from nbagent.transport import protocol
from nbagent.transport.protocol import ProtocolError, load_schema, validate_message
from tests.fake_anthropic import FakeAnthropic, env_for, error, reply, text, thinking, tool_use
from tests.test_mcp import STARTUP, stdio_entry

ROOT = Path(__file__).resolve().parent.parent
LABEXT = ROOT / "labextension"
LIB = LABEXT / "lib"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
V = protocol.PROTOCOL_VERSION
TURN_MIME = "application/vnd.nbagent.turn+json"
MCP_SERVER = "notes"
EVENT_CLASSES: tuple[type, ...] = typing.get_args(ev.Event)


def _defs() -> dict[str, Any]:
    defs: dict[str, Any] = load_schema()["$defs"]
    return defs


def _ref_name(ref: dict[str, str]) -> str:
    return ref["$ref"].rsplit("/", 1)[-1]


# -- the schema itself -------------------------------------------------------------


def test_the_schema_is_valid_json_schema_2020_12() -> None:
    import jsonschema

    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_one_version_and_one_pair_of_targets() -> None:
    defs = _defs()
    assert defs["Version"]["const"] == protocol.PROTOCOL_VERSION == 5
    assert transport_bridge.PROTOCOL_VERSION == protocol.PROTOCOL_VERSION
    assert defs["EventsTarget"]["const"] == transport_bridge.EVENTS_TARGET
    assert defs["ControlTarget"]["const"] == transport_bridge.CONTROL_TARGET
    # Every comm message carries the version.
    for name in ("KernelMsg", "ControlMsg"):
        for alternative in _leaf_messages(name):
            assert defs[alternative]["properties"]["v"] == {"$ref": "#/$defs/Version"}, alternative


def _leaf_messages(name: str) -> list[str]:
    definition = _defs()[name]
    if "oneOf" not in definition:
        return [name]
    return [leaf for ref in definition["oneOf"] for leaf in _leaf_messages(_ref_name(ref))]


def test_every_event_class_has_exactly_its_definition() -> None:
    """The schema's AgentEvent lists one definition per class of nbagent.events.Event,
    with the fields event_to_dict produces, all of them required."""
    defs = _defs()
    by_type = {}
    for ref in defs["AgentEvent"]["oneOf"]:
        definition = defs[_ref_name(ref)]
        by_type[definition["properties"]["type"]["const"]] = definition
    classes = {cls.__dataclass_fields__["type"].default: cls for cls in EVENT_CLASSES}
    assert set(by_type) == set(classes)
    for kind, cls in classes.items():
        fields = {f.name for f in dataclasses.fields(cls)} - {"exception"}
        definition = by_type[kind]
        assert set(definition["properties"]) == fields, kind
        assert set(definition["required"]) == fields, kind
        assert definition["additionalProperties"] is False, kind


def test_validation_rejects_what_the_schema_does_not_allow() -> None:
    good = {
        "v": V,
        "type": "agent_event",
        "turn_id": "t1",
        "source": "panel",
        "event": ev.event_to_dict(ev.Notice("hi", attachments=("a.csv",))),
    }
    validate_message(good, "kernel")
    bad = [
        ({**good, "v": V - 1}, f"v: {V} was expected"),
        ({**good, "source": "terminal"}, "source: 'terminal' is not one of"),
        ({**good, "event": {"type": "text_delta", "txt": "x"}}, "'text' is a required property"),
        ({**good, "extra": 1}, "'extra' was unexpected"),
    ]
    for message, reason in bad:
        with pytest.raises(ProtocolError, match=reason):
            validate_message(message, "kernel")
    # A frontend message is not a kernel message.
    with pytest.raises(ProtocolError):
        validate_message({"v": V, "type": "stop"}, "kernel")
    validate_message({"v": V, "type": "stop"}, "frontend")


def test_debug_mode_logs_messages_that_break_the_protocol(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Kernel:
        comm_manager = None

    monkeypatch.setenv(protocol.DEBUG_ENV, "1")
    bridge = transport_bridge.Bridge(Kernel())
    bridge.handle_control({"v": V - 1, "type": "stop"})
    assert f"v: {V} was expected" in caplog.text
    caplog.clear()
    bridge.handle_control({"v": V, "type": "stop"})
    assert caplog.text == ""
    assert bridge.stop_requested.is_set()


# -- the generated TypeScript ---------------------------------------------------------


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "gen_protocol_ts", ROOT / "scripts/gen_protocol_ts.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_typescript_types_are_the_ones_generated_from_the_schema() -> None:
    gen = _generator()
    expected = gen.render(load_schema())
    current = (LABEXT / "src" / "protocolTypes.ts").read_text(encoding="utf-8")
    assert current == expected, (
        "labextension/src/protocolTypes.ts differs from the schema: run "
        "`python scripts/gen_protocol_ts.py`, bump the protocol version if the schema changed, "
        "and rebuild the extension"
    )
    assert f"export type Version = {V};" in current
    assert "export type TurnSource = 'cell' | 'sidebar' | 'panel';" in current
    assert "subshells: boolean;" in current
    assert "client_id: string | null;" in current  # the hello names the client it answers


# -- running the compiled TypeScript ------------------------------------------------


def _lib(name: str) -> Path:
    compiled = LIB / f"{name}.js"
    source = LABEXT / "src" / f"{name}.ts"
    assert compiled.exists(), f"{compiled} is missing: run `bash scripts/build_labextension.sh`"
    assert compiled.stat().st_mtime >= source.stat().st_mtime, (
        f"{compiled} is older than {source}: run `bash scripts/build_labextension.sh`"
    )
    return compiled


def run_node(script: str, stdin: Any = None) -> Any:
    """Run an ES module script in Node; it prints one JSON value, which is returned.
    `stdin` (JSON) is readable in the script as `input`."""
    node = shutil.which("node")
    assert node, "Node.js is needed to test the labextension's TypeScript"
    prelude = (
        "import { readFileSync } from 'node:fs';\n"
        "const input = JSON.parse(readFileSync(0, 'utf-8') || 'null');\n"
    )
    proc = subprocess.run(
        [node, "--no-warnings", "--input-type=module", "-e", prelude + script],
        input=json.dumps(stdin),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _import(name: str, alias: str) -> str:
    return f"import * as {alias} from {json.dumps(_lib(name).as_uri())};\n"


CELLS = [
    {
        "id": "c1",
        "cell_type": "code",
        "source": "x = 1",
        "execution_count": 3,
        "outputs": [{"output_type": "stream", "name": "stdout", "text": "done\n"}],
        "metadata": {"tags": ["setup"]},
    },
    {
        "id": "c2",
        "cell_type": "markdown",
        "source": "# Notes",
        "execution_count": None,
        "outputs": [],
        "metadata": {},
    },
]


def test_every_message_the_frontend_builds_matches_the_schema() -> None:
    script = _import("protocol", "p") + (
        "const cells = input;\n"
        "console.log(JSON.stringify({\n"
        "  version: p.PROTOCOL_VERSION, events: p.EVENTS_TARGET, control: p.CONTROL_TARGET,\n"
        "  messages: [\n"
        "    p.registerMsg('client-1', 'work/a.ipynb', 'subshell-1'),\n"
        "    p.registerMsg('client-1', 'work/a.ipynb', null),\n"
        "    p.pathChangedMsg('client-1', 'work/b.ipynb'),\n"
        "    p.replyOk('req-1', { path: 'work/a.ipynb', cells }),\n"
        "    p.replyOk('req-2', { cell_id: 'c3', index: 2 }),\n"
        "    p.replyOk('req-3', {}),\n"
        "    p.replyError('req-4', 'conflict', 'cell c1 changed since it was read'),\n"
        "    p.replyError('req-5', 'internal', 'Error: boom'),\n"
        "    p.approvalMsg('toolu_1', 'allow'),\n"
        "    p.approvalMsg('toolu_2', 'always'),\n"
        "    p.approvalMsg('toolu_3', 'deny'),\n"
        "    p.stopMsg(),\n"
        "    p.revertMsg(2),\n"
        "  ],\n"
        "}));\n"
    )
    out = run_node(script, CELLS)
    assert out["version"] == protocol.PROTOCOL_VERSION
    assert (out["events"], out["control"]) == (protocol.EVENTS_TARGET, protocol.CONTROL_TARGET)
    kinds = set()
    for message in out["messages"]:
        validate_message(message, "frontend")
        kinds.add(message["type"])
    assert kinds == {"register", "path_changed", "reply", "approval", "stop", "revert"}


# -- usage ----------------------------------------------------------------------------


def reference_line(u: dict[str, Any]) -> str:
    """tests/fixtures/usage_format.json's definition, in Python."""
    total = u["input_tokens"] + u["cache_creation_input_tokens"] + u["cache_read_input_tokens"]
    cached = round(100 * u["cache_read_input_tokens"] / total) if total > 0 else 0
    cost = "cost unknown" if u["cost_usd"] is None else f"${u['cost_usd']:.4f}"
    return f"{total:,} in ({cached}% cached) · {u['output_tokens']:,} out · {cost}"


def _usage(inp: int, out: int, write: int, read: int, cost: float | None) -> dict[str, Any]:
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "cost_usd": cost,
    }


# Where JavaScript's defaults and Python's differ: ties (Python rounds half to even,
# on the exact binary value of the cost) and big numbers.
EDGE_CASES = [
    _usage(7, 1, 0, 1, 0.03125),  # 12.5% cached -> 12; 0.03125 is an exact tie -> $0.0312
    _usage(5, 0, 0, 3, 0.03135),  # 37.5% -> 38; 0.03135 is stored just above -> $0.0314
    _usage(1, 0, 0, 1, 0.00005),  # 50%; stored just above the tie -> $0.0001
    _usage(3, 0, 0, 997, 0.99995),  # 99.7% -> 100; -> $1.0000
    _usage(1, 1, 1, 1, 98765.43215),  # stored just below -> $98765.4321
    _usage(10**12, 10**9, 0, 0, 1e-15),
    _usage(0, 0, 0, 0, None),
]


def test_usage_ts_formats_like_the_definition() -> None:
    fixture = json.loads((FIXTURES / "usage_format.json").read_text(encoding="utf-8"))
    cases = [c["usage"] for c in fixture["cases"]] + EDGE_CASES
    script = _import("usage", "u") + (
        "console.log(JSON.stringify({\n"
        "  lines: input.map(c => u.formatUsage(c)),\n"
        "  sum: u.addUsage(input[1], input[2]),\n"
        "  unknown: u.addUsage(input[1], input[3]).cost_usd,\n"
        "}));\n"
    )
    out = run_node(script, cases)
    for case, line in zip(fixture["cases"], out["lines"], strict=False):
        assert line == case["line"], case["usage"]
        assert reference_line(case["usage"]) == case["line"]
    for usage, line in zip(EDGE_CASES, out["lines"][len(fixture["cases"]) :], strict=True):
        assert line == reference_line(usage), usage
    first, second = fixture["cases"][1]["usage"], fixture["cases"][2]["usage"]
    assert out["sum"] == {k: first[k] + second[k] for k in first}
    assert out["unknown"] is None


# -- the kernel -------------------------------------------------------------------------


class Frontend:
    """A jupyter_client connection that acts as the nbagent labextension: a subshell,
    the control comm on it, and a notebook it edits when the kernel asks."""

    def __init__(self, kc: Any) -> None:
        self.kc = kc
        self.client_id = f"client-{uuid.uuid4().hex[:8]}"
        self.control_comm_id = uuid.uuid4().hex
        self.subshell_id: str | None = None
        self.events_comms: set[str] = set()
        # Each comm_open of the events comm: (how many messages had been sent, its data).
        self.opened: list[tuple[int, dict[str, Any]]] = []
        self.received: list[dict[str, Any]] = []  # every events-comm message, in order
        self.before_restart = 0  # len(received) before `%agent mcp restart`
        self.outputs: list[dict[str, Any]] = []  # display data of the executions
        self.sent: list[dict[str, Any]] = []
        self.cells = [dict(c) for c in CELLS]
        self.inserted = 0
        self.metadata: dict[str, Any] = {}  # the notebook's, as set_notebook_metadata left it
        self.decisions = iter(["allow", "always", "allow", "allow", "allow", "allow"])
        self.listened: Any = None
        self.cwd = Path()  # the kernel's working directory

    def control_request(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        msg = self.kc.session.msg(msg_type, content)
        self.kc.control_channel.send(msg)
        while True:
            answer = self.kc.get_control_msg(timeout=10)
            if answer["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                return answer["content"]

    def _on_subshell(self, msg_type: str, content: dict[str, Any]) -> None:
        msg = self.kc.session.msg(msg_type, content)
        msg["header"]["subshell_id"] = self.subshell_id
        self.kc.shell_channel.send(msg)

    def send(self, data: dict[str, Any]) -> None:
        validate_message(data, "frontend")
        self.sent.append(data)
        if data["type"] == "register":
            content = {
                "comm_id": self.control_comm_id,
                "target_name": protocol.CONTROL_TARGET,
                "data": data,
            }
            self._on_subshell("comm_open", content)
        else:
            self._on_subshell("comm_msg", {"comm_id": self.control_comm_id, "data": data})

    def listen(self, expression: str) -> Any:
        """The labextension's first step: its listen expression, evaluated silently."""
        msg_id = self.kc.execute(
            "", silent=True, store_history=False, user_expressions={"nbagent": expression}
        )
        while True:
            answer = self.kc.get_shell_msg(timeout=10)
            if answer["parent_header"].get("msg_id") == msg_id:
                return answer["content"]["user_expressions"]["nbagent"]

    def register(self, path: str) -> None:
        created = self.control_request("create_subshell_request", {})
        assert created["status"] == "ok", created
        self.subshell_id = created["subshell_id"]
        self.send(
            {
                "v": V,
                "type": "register",
                "client_id": self.client_id,
                "path": path,
                "subshell_id": self.subshell_id,
            }
        )

    def run(self, code: str, timeout: float = 60) -> dict[str, Any]:
        """Execute `code`, answering the kernel's requests and approvals meanwhile;
        the execute_reply's content."""
        msg_id = self.kc.execute(code, store_history=False, allow_stdin=False)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out running {code!r}"
            try:
                msg = self.kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                continue
            self._on_iopub(msg)
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
            ):
                break
        while True:
            answer = self.kc.get_shell_msg(timeout=10)
            if answer["parent_header"].get("msg_id") == msg_id:
                return answer["content"]

    def wait_for(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        """Read iopub (answering requests) until the kernel sends a `kind` message
        (one not seen before this call); it is returned."""
        seen = len(self.received)
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.received[seen:] if m.get("type") == kind]
            if found:
                return found[0]
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for a {kind} message"
            try:
                self._on_iopub(self.kc.get_iopub_msg(timeout=min(left, 1)))
            except queue.Empty:
                continue

    def _on_iopub(self, msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "comm_open" and content["target_name"] == protocol.EVENTS_TARGET:
            self.events_comms.add(content["comm_id"])
            self.opened.append((len(self.sent), content["data"]))
            self.received.append(content["data"])
        elif kind == "comm_msg" and content["comm_id"] in self.events_comms:
            data = content["data"]
            self.received.append(data)
            if data.get("type") == "request" and data.get("client_id") == self.client_id:
                self._answer(data)
            elif data.get("type") == "agent_event" and data["event"]["type"] == "approval_request":
                decision = next(self.decisions)
                call_id = data["event"]["call"]["id"]
                self.send({"v": V, "type": "approval", "call_id": call_id, "decision": decision})
        elif kind in ("display_data", "update_display_data", "execute_result"):
            self.outputs.append(content["data"])

    def _answer(self, request: dict[str, Any]) -> None:
        op, args = request["op"], request["args"]
        result: dict[str, Any] = {}
        if op == "read_notebook":
            result = {"path": "work/contract.ipynb", "cells": self.cells}
        elif op == "insert_cell":
            after = [c["id"] for c in self.cells].index(args["after_cell_id"]) + 1
            self.inserted += 1
            cell_id = f"c{len(CELLS) + self.inserted}"  # never reused, as in a notebook
            cell = {**CELLS[0], "id": cell_id, "source": args["source"], "outputs": []}
            self.cells.insert(after, cell)
            result = {"cell_id": cell_id, "index": after}
        elif op == "edit_cell":
            self._cell(args["cell_id"])["source"] = args["source"]
        elif op == "delete_cell":
            self.cells.remove(self._cell(args["cell_id"]))
        elif op == "set_outputs":
            self._cell(args["cell_id"])["outputs"] = args["outputs"]
        elif op == "set_notebook_metadata":
            self.metadata[args["key"]] = args["value"]
        self.send({"v": V, "type": "reply", "id": request["id"], "ok": True, "result": result})

    def _cell(self, cell_id: str) -> dict[str, Any]:
        return next(c for c in self.cells if c["id"] == cell_id)


PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"


@pytest.fixture(scope="module")
def kernel_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Frontend]:
    """One kernel that ran a sidebar turn, a %%agent cell and a panel turn."""
    with FakeAnthropic() as fake:
        env = {**os.environ, **env_for(fake), "PYTHONUNBUFFERED": "1"}
        env.pop("MPLBACKEND", None)  # the inline backend: figures become image outputs
        env.pop("JPY_SESSION_NAME", None)
        km = KernelManager(kernel_name="python3")
        cwd = tmp_path_factory.mktemp("contract")
        km.start_kernel(env=env, cwd=str(cwd))
        kc = km.blocking_client()
        try:
            kc.start_channels()
            kc.wait_for_ready(timeout=60)
            fe = Frontend(kc)
            fe.cwd = cwd
            # The handshake as the labextension does it when it attaches to a kernel,
            # before anyone loads nbagent.
            fe.listened = fe.listen(_listen_expression())
            fe.register("work/contract.ipynb")
            _ok(fe.run(_WAIT_REGISTERED))
            _ok(fe.run("%load_ext nbagent\n%config NBAgent.permission_mode = 'ask'"))
            _sidebar_turn(fe, fake)
            fake.enqueue(reply(text("The cell's answer."), usage={"input_tokens": 50}))
            _ok(fe.run("%%agent\nSay something short"))
            fake.enqueue("The panel's answer.")
            _ok(fe.run("import nbagent\npanel = nbagent.chat()\npanel.send('hi')\npanel.wait(30)"))
            # Review and revert: the sidebar turn changed cells and a variable.
            fe.send({"v": V, "type": "revert", "turn": 1})
            fe.wait_for("revert_result")
            fe.wait_for("changes")
            # MCP: a stdio server configured, a turn starts it and ends with its status.
            _ok(fe.run(_mcp_config(cwd / "notes.txt")))
            fake.enqueue("MCP is up.")
            _ok(fe.run("%%agent\nWhich tools do you have?", timeout=STARTUP + 60))
            # A page reload: a new client registers and is told the conversation.
            fe.client_id = f"client-{uuid.uuid4().hex[:8]}"
            fe.control_comm_id = uuid.uuid4().hex
            fe.register("work/contract.ipynb")
            fe.wait_for("mcp_status")  # the last thing a register is sent, after its history
            # `%agent mcp restart` stops the server: the clients are told at once.
            fe.before_restart = len(fe.received)
            _ok(fe.run(f"%agent mcp restart {MCP_SERVER}"))
            if not [m for m in fe.received[fe.before_restart :] if m["type"] == "mcp_status"]:
                fe.wait_for("mcp_status")
            yield fe
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)


def _mcp_config(notes: Path) -> str:
    servers = {MCP_SERVER: stdio_entry(notes)}
    return f"%config NBAgent.permission_mode = 'auto'\n%config NBAgent.mcp_servers = {servers!r}"


def _listen_expression() -> str:
    """The expression the labextension evaluates first (labextension/src/protocol.ts)."""
    expression: str = run_node(
        _import("protocol", "p") + "console.log(JSON.stringify(p.LISTEN_EXPRESSION));\n"
    )
    return expression


_WAIT_REGISTERED = (
    "import time\n"
    "from nbagent.transport.bridge import get_bridge\n"
    "t0 = time.monotonic()\n"
    "while not get_bridge().clients and time.monotonic() - t0 < 10: time.sleep(0.01)\n"
    "assert get_bridge().clients"
)


def _ok(content: dict[str, Any]) -> None:
    assert content["status"] == "ok", "\n".join(content.get("traceback", []))[-3000:]


def _sidebar_turn(fe: Frontend, fake: FakeAnthropic) -> None:
    """Every event type, every notebook op and every approval decision kind, in one turn."""
    fake.enqueue(
        reply(
            thinking("The user wants the notebook tidied."),
            text("I'll read the notebook first."),
            tool_use("read_notebook", {}),
            tool_use("message_notify_user", {"text": "Reading it", "attachments": ["a.csv"]}),
        ),
        reply(
            tool_use("insert_cell", {"source": "y = 2", "after_cell_id": "c1"}),
            tool_use("edit_cell", {"cell_id": "c1", "source": PLOT}),
            tool_use("delete_cell", {"cell_id": "c2"}),
            tool_use("run_cell", {"cell_id": "c1"}),
        ),
        error(400, "fake: this request is refused"),
    )
    payload = json.dumps({"prompt": "Tidy the notebook", "client_id": fe.client_id, "path": "x"})
    _ok(
        fe.run(
            "__import__('nbagent.jupyter.bridge', fromlist=['sidebar_turn'])"
            f".sidebar_turn({payload!r})"
        )
    )


def test_everything_the_kernel_sends_matches_the_schema(kernel_session: Frontend) -> None:
    received = kernel_session.received
    for message in received:
        validate_message(message, "kernel")
    types = {m["type"] for m in received}
    every_type = {
        _defs()[leaf]["properties"]["type"]["const"] for leaf in _leaf_messages("KernelMsg")
    }
    assert (
        types
        == every_type
        == {
            "hello",
            "agent_event",
            "state",
            "request",
            "history",
            "changes",
            "revert_result",
            "mcp_status",
        }
    )
    events = [m for m in received if m["type"] == "agent_event"]
    seen = {m["event"]["type"] for m in events}
    every = {cls.__dataclass_fields__["type"].default for cls in EVENT_CLASSES}
    assert seen == every, f"not produced by the scripted turns: {every - seen}"
    assert {m["source"] for m in events} == {"sidebar", "cell", "panel"}
    ops = {m["op"] for m in received if m["type"] == "request"}
    assert (
        ops
        == set(_defs()["RequestOp"]["enum"])
        == {
            "read_notebook",
            "insert_cell",
            "edit_cell",
            "delete_cell",
            "set_outputs",
            "set_notebook_metadata",
        }
    )
    hello = next(m for m in received if m["type"] == "hello")
    assert hello["subshells"] is True and hello["v"] == protocol.PROTOCOL_VERSION
    states = [m for m in received if m["type"] == "state"]
    assert [s["busy"] for s in states][-1] is False and "usage" in states[-1]
    images = [
        b
        for m in events
        if m["event"]["type"] == "tool_result" and isinstance(m["event"]["output"]["content"], list)
        for b in m["event"]["output"]["content"]
        if b["type"] == "image"
    ]
    assert images, "run_cell's figure did not come back as an image block"
    # The edit carried the hash of the source the agent read.
    edit = next(m for m in received if m.get("op") == "edit_cell")
    assert edit["args"]["expected_hash"] == hashlib.sha256(b"x = 1").hexdigest()


def test_the_frontend_speaks_first(kernel_session: Frontend) -> None:
    """listen() answers the version; the events comm opens once, with the hello that
    answers the register, after it."""
    assert kernel_session.listened == {
        "status": "ok",
        "data": {"text/plain": str(V)},
        "metadata": {},
    }
    assert len(kernel_session.opened) == 1, kernel_session.opened
    sent_before, hello = kernel_session.opened[0]
    assert sent_before >= 1 and kernel_session.sent[0]["type"] == "register"
    first_client = kernel_session.sent[0]["client_id"]  # (a second one registers later)
    assert hello["type"] == "hello" and hello["client_id"] == first_client
    assert kernel_session.received[0] == hello


def test_the_frontend_parses_everything_the_kernel_sends(kernel_session: Frontend) -> None:
    script = _import("protocol", "p") + (
        "console.log(JSON.stringify(input.map(m => p.parseKernelMsg(m).kind)));\n"
    )
    kinds = run_node(script, kernel_session.received)
    assert set(kinds) == {"message"}, [
        (k, m) for k, m in zip(kinds, kernel_session.received, strict=True) if k != "message"
    ][:3]


def test_cell_outputs_match_the_turn_output_schema(kernel_session: Frontend) -> None:
    turns = [data[TURN_MIME] for data in kernel_session.outputs if TURN_MIME in data]
    assert turns, "the %%agent cell showed no application/vnd.nbagent.turn+json output"
    for turn in turns:
        validate_message(turn, definition="TurnOutput")


def test_the_frontend_messages_of_the_run_match_the_schema(kernel_session: Frontend) -> None:
    """What the stand-in sent (validated as it sent them) covers the control messages
    a turn needs: registration, replies to every op, every approval decision, a revert."""
    sent = kernel_session.sent
    assert {m["type"] for m in sent} == {"register", "reply", "approval", "revert"}
    assert {m["decision"] for m in sent if m["type"] == "approval"} >= {"allow", "always"}


def test_the_notebook_metadata_names_the_conversation_record(kernel_session: Frontend) -> None:
    """After the first completed turn the kernel puts a pointer to its record (not the
    conversation) into the notebook's metadata, once per conversation."""
    requests = [m for m in kernel_session.received if m.get("op") == "set_notebook_metadata"]
    assert len(requests) == 1, requests
    pointer = kernel_session.metadata["nbagent"]
    assert pointer == {"record": ".nbagent", "conversation": pointer["conversation"], "format": 1}
    saved = kernel_session.cwd / ".nbagent"
    assert any(pointer["conversation"] in p.name for p in saved.rglob("*.json")), list(
        saved.rglob("*")
    )


def test_a_revert_restores_the_turns_cells_and_says_what(kernel_session: Frontend) -> None:
    result = next(m for m in kernel_session.received if m["type"] == "revert_result")
    assert result["client_id"] == kernel_session.sent[0]["client_id"]
    assert (result["ok"], result["turn"]) == (True, 1), result
    (report,) = result["reports"]
    assert report["turn"] == 1 and report["label"] == "Tidy the notebook"
    assert len(report["restored"]) >= 3, report  # the edit, the delete, the insert
    # The stand-in's notebook is what it was before the sidebar turn.
    assert [(c["id"], c["source"]) for c in kernel_session.cells] == [
        ("c1", "x = 1"),
        ("c4", "# Notes"),  # c2 came back as a new cell, where it was
    ]
    changes = [m for m in kernel_session.received if m["type"] == "changes"]
    before = next(c for c in changes if c["turns"] and not c["turns"][0]["undone"])
    assert before["turns"][0]["turn"] == 1 and before["turns"][0]["cells"] == 3
    assert "x = 1" in before["turns"][0]["diff"]
    after = changes[-1]["turns"][0]
    assert after["turn"] == 1 and after["undone"] is True and after["diff"] == ""


def test_a_restart_from_the_notebook_sends_the_servers_state(kernel_session: Frontend) -> None:
    after = kernel_session.received[kernel_session.before_restart :]
    (status,) = [m for m in after if m["type"] == "mcp_status"]
    (server,) = status["servers"]
    assert server["name"] == MCP_SERVER and server["state"] != "running", server


def test_the_mcp_servers_are_sent_after_a_turn_and_on_register(kernel_session: Frontend) -> None:
    """A turn that started the configured server ends with its state and tools, as
    `%agent mcp` lists them; a client that registers later is sent the same."""
    received = kernel_session.received
    statuses = [i for i, m in enumerate(received) if m["type"] == "mcp_status"]
    hellos = [i for i, m in enumerate(received) if m["type"] == "hello"]
    assert len(hellos) == 2 and statuses, statuses
    after_turn = [i for i in statuses if i < hellos[1]]
    on_register = [i for i in statuses if i > hellos[1]]
    assert after_turn and on_register, (statuses, hellos)
    for i in (after_turn[-1], on_register[0]):
        (server,) = received[i]["servers"]
        assert (server["name"], server["state"], server["source"]) == (
            MCP_SERVER,
            "running",
            "setting",
        ), server
        tools = {t["name"]: t["category"] for t in server["tools"]}
        assert tools["mcp__notes__echo"] == "read", tools
        assert tools["mcp__notes__wipe_notes"] != "read", tools  # unannotated: destructive
        assert "error" not in server
    # Before any server was configured, no turn sent one.
    assert statuses[0] > next(i for i, m in enumerate(received) if m["type"] == "revert_result")


def test_a_new_client_is_told_the_conversation(kernel_session: Frontend) -> None:
    history = next(m for m in kernel_session.received if m["type"] == "history" and m["entries"])
    assert history["client_id"] == kernel_session.client_id  # the second client
    assert history["origin"] == "session" and history["omitted"] == 0
    prompts = [e["text"].strip() for e in history["entries"] if e["kind"] == "prompt"]
    assert prompts[:3] == ["Tidy the notebook", "Say something short", "hi"], prompts
    assert any("undid the changes of turn 1" in p for p in prompts), prompts
    turns = [e for e in history["entries"] if e["kind"] == "turn"]
    kinds = {b["kind"] for t in turns for b in t["blocks"]}
    assert {"thinking", "text", "tool"} <= kinds, kinds
    assert any(b.get("text") == "The cell's answer." for t in turns for b in t["blocks"])
    # The first client's register (nothing said yet) got an empty history.
    first = next(m for m in kernel_session.received if m["type"] == "history")
    assert first["entries"] == [] and first["client_id"] == kernel_session.sent[0]["client_id"]
