"""The kernel side of docs/protocol.md, in a real kernel, against a frontend stand-in.

The stand-in speaks raw Jupyter messages as the labextension does in JupyterLab >= 4.4
and Notebook 7: it asks the kernel to listen (a silent `listen()` in
`user_expressions`), creates a subshell on the control channel, opens the
`nbagent.control` comm on it with a register, waits for the kernel's hello on
`nbagent.events`, and answers the kernel's notebook requests with `comm_msg` replies
carrying `header.subshell_id`, while the main shell is busy running the cell that
waits for them. A headless run (nbclient) must see no comm at all.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from nbagent.transport.protocol import PROTOCOL_VERSION, validate_message
from tests.fake_anthropic import FakeAnthropic, env_for, reply, text

STARTUP_TIMEOUT = 60
LISTEN = "__import__('nbagent.jupyter.bridge', fromlist=['listen']).listen()"


class FakeFrontend:
    """A jupyter_client connection that behaves like the nbagent labextension."""

    def __init__(self, kc: Any) -> None:
        self.kc = kc
        self.client_id = f"client-{uuid.uuid4().hex[:8]}"
        self.control_comm_id = uuid.uuid4().hex
        self.subshell_id: str | None = None
        self.events_comm_id: str | None = None
        self.hello: dict[str, Any] | None = None
        self._seen: list[dict[str, Any]] = []
        self.interrupt: Callable[[], None] = lambda: None
        self.loaded_after_handshake = ""

    # -- raw messages -------------------------------------------------------

    def execute(self, code: str) -> str:
        return self.kc.execute(code, store_history=False, allow_stdin=False)

    def listen(self) -> Any:
        """What the labextension does first: `listen()`, evaluated silently."""
        msg_id = self.kc.execute(
            "", silent=True, store_history=False, user_expressions={"nbagent": LISTEN}
        )
        reply = self.kc.get_shell_msg(timeout=10)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=10)
        return reply["content"]["user_expressions"]["nbagent"]

    def iopub(self, match: Callable[[dict[str, Any]], bool], timeout: float = 10) -> dict[str, Any]:
        """The first iopub message (seen before or arriving within `timeout`) that matches."""
        for i, msg in enumerate(self._seen):
            if match(msg):
                return self._seen.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for an iopub message")
            try:
                msg = self.kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                continue
            if match(msg):
                return msg
            self._seen.append(msg)

    def finish(self, msg_id: str, timeout: float = 15) -> tuple[dict[str, Any], str]:
        """Wait for a cell to end: its execute_reply content and its stdout + stderr."""
        reply = self.kc.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=timeout)
        self.iopub(
            lambda m: (
                m["parent_header"].get("msg_id") == msg_id
                and m["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"
            ),
            timeout,
        )
        out = []
        for m in list(self._seen):
            if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] in ("stream", "error"):
                self._seen.remove(m)
                c = m["content"]
                out.append(c.get("text") or "\n".join(c.get("traceback", [])))
        return reply["content"], "".join(out)

    def run(self, code: str, timeout: float = 15) -> str:
        reply, out = self.finish(self.execute(code), timeout)
        assert reply["status"] == "ok", out
        return out

    def control_request(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        msg = self.kc.session.msg(msg_type, content)
        self.kc.control_channel.send(msg)
        while True:
            reply = self.kc.get_control_msg(timeout=10)
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                return reply["content"]

    def send_on_subshell(self, msg_type: str, content: dict[str, Any]) -> None:
        msg = self.kc.session.msg(msg_type, content)
        msg["header"]["subshell_id"] = self.subshell_id
        self.kc.shell_channel.send(msg)

    # -- the protocol -------------------------------------------------------

    def open_control(self, path: str, version: int = PROTOCOL_VERSION) -> None:
        self.send_on_subshell(
            "comm_open",
            {
                "comm_id": self.control_comm_id,
                "target_name": "nbagent.control",
                "data": {
                    "v": version,
                    "type": "register",
                    "client_id": self.client_id,
                    "path": path,
                    "subshell_id": self.subshell_id,
                },
            },
        )

    def next_hello(self, timeout: float = 10) -> tuple[str, dict[str, Any]]:
        """The kernel's hello to this client: how it came (the events comm's comm_open,
        or a comm_msg on it) and its data."""
        msg = self.iopub(
            lambda m: (
                m["msg_type"] in ("comm_open", "comm_msg")
                and m["content"]["data"].get("type") == "hello"
                and m["content"]["data"].get("client_id") == self.client_id
            ),
            timeout,
        )
        if msg["msg_type"] == "comm_open":
            assert msg["content"]["target_name"] == "nbagent.events"
        self.events_comm_id = msg["content"]["comm_id"]
        return msg["msg_type"], msg["content"]["data"]

    def send_control(self, data: dict[str, Any]) -> None:
        self.send_on_subshell(
            "comm_msg", {"comm_id": self.control_comm_id, "data": {"v": PROTOCOL_VERSION, **data}}
        )

    def next_request(self, timeout: float = 10) -> dict[str, Any]:
        msg = self.iopub(
            lambda m: (
                m["msg_type"] == "comm_msg"
                and m["content"]["comm_id"] == self.events_comm_id
                and m["content"]["data"].get("type") == "request"
            ),
            timeout,
        )
        return msg["content"]["data"]

    def reply(self, request: dict[str, Any], **fields: Any) -> None:
        self.send_control({"type": "reply", "id": request["id"], **fields})


@pytest.fixture(scope="module")
def frontend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeFrontend]:
    env = {
        **os.environ,
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
        "ANTHROPIC_API_KEY": "sk-ant-fake-test-key",
        "MPLBACKEND": "Agg",
    }
    env.pop("JPY_SESSION_NAME", None)
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(tmp_path_factory.mktemp("kernel")))
    kc = km.blocking_client()
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
        fe = FakeFrontend(kc)
        fe.interrupt = km.interrupt_kernel
        kc.kernel_info()
        info = kc.get_shell_msg(timeout=10)["content"]
        assert "kernel subshells" in info.get("supported_features", []), (
            "this kernel does not support subshells; the bridge needs ipykernel >= 7"
        )

        # Handshake 1: the frontend asks the kernel to listen (nbagent is not loaded).
        listened = fe.listen()
        assert listened == {
            "status": "ok",
            "data": {"text/plain": str(PROTOCOL_VERSION)},
            "metadata": {},
        }

        # Handshake 2: a subshell, the control comm opened on it with a register, and
        # the kernel's hello, which opens the events comm.
        created = fe.control_request("create_subshell_request", {})
        assert created["status"] == "ok", created
        fe.subshell_id = created["subshell_id"]
        fe.open_control("work/analysis.ipynb")
        how, fe.hello = fe.next_hello()
        assert how == "comm_open"
        out = fe.run(
            "import time\n"
            "import nbagent.jupyter.bridge as b\n"
            "bridge = b.get_bridge()\n"
            "t0 = time.monotonic()\n"
            "while not bridge.clients and time.monotonic() - t0 < 10: time.sleep(0.01)\n"
            "print([(c.client_id, c.path, c.subshell_id) for c in bridge.clients])"
        )
        assert repr((fe.client_id, "work/analysis.ipynb", fe.subshell_id)) in out
        # Listening let the client register without loading the extension.
        fe.loaded_after_handshake = fe.run(
            "import sys\n"
            "print('extension', 'nbagent.jupyter.extension' in sys.modules)\n"
            "print('magic', 'agent' in get_ipython().magics_manager.magics['cell'])"
        )
        yield fe
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_hello(frontend: FakeFrontend) -> None:
    hello = frontend.hello
    assert hello is not None
    validate_message(hello, "kernel")
    assert hello["v"] == PROTOCOL_VERSION and hello["type"] == "hello"
    assert hello["client_id"] == frontend.client_id
    assert hello["nbagent"] and hello["subshells"] is True
    assert "kernel_id" in hello


def test_listening_does_not_load_the_extension(frontend: FakeFrontend) -> None:
    out = frontend.loaded_after_handshake
    assert "extension False" in out and "magic False" in out


def _another_client(frontend: FakeFrontend) -> FakeFrontend:
    """A second client on the same connection and subshell (one iopub stream)."""
    other = FakeFrontend(frontend.kc)
    other._seen = frontend._seen
    other.subshell_id = frontend.subshell_id
    return other


def test_a_second_client_gets_its_hello_on_the_open_events_comm(
    frontend: FakeFrontend,
) -> None:
    second = _another_client(frontend)
    second.open_control("work/other.ipynb")
    how, hello = second.next_hello()
    assert (how, second.events_comm_id) == ("comm_msg", frontend.events_comm_id)
    validate_message(hello, "kernel")
    out = frontend.run(
        "t0 = time.monotonic()\n"
        f"while {second.client_id!r} not in [c.client_id for c in bridge.clients]"
        " and time.monotonic() - t0 < 10: time.sleep(0.01)\n"
        "print(sorted(c.path for c in bridge.clients))"
    )
    assert "['work/analysis.ipynb', 'work/other.ipynb']" in out
    second.send_on_subshell("comm_close", {"comm_id": second.control_comm_id, "data": {}})
    out = frontend.run(
        "t0 = time.monotonic()\n"
        "while len(bridge.clients) > 1 and time.monotonic() - t0 < 10: time.sleep(0.01)\n"
        "print([c.client_id for c in bridge.clients])"
    )
    assert repr([frontend.client_id]) in out


def test_a_register_of_another_version_is_answered_not_registered(
    frontend: FakeFrontend,
) -> None:
    """The hello tells an older or newer frontend which version the kernel speaks."""
    other = _another_client(frontend)
    other.open_control("work/old.ipynb", version=PROTOCOL_VERSION - 1)
    _, hello = other.next_hello()
    assert hello["v"] == PROTOCOL_VERSION
    out = frontend.run("time.sleep(0.2); print([c.client_id for c in bridge.clients])")
    assert other.client_id not in out and frontend.client_id in out


def test_unloading_the_extension_keeps_the_frontends_registered(frontend: FakeFrontend) -> None:
    out = frontend.run(
        "%load_ext nbagent\n"
        "%unload_ext nbagent\n"
        "print('after unload', [c.client_id for c in bridge.clients], bridge._sidebar_handler)\n"
        "%load_ext nbagent\n"
        "print('after load', bridge._sidebar_handler is not None)"
    )
    assert f"after unload [{frontend.client_id!r}] None" in out
    assert "after load True" in out


def test_a_busy_kernel_gets_the_frontends_reply(frontend: FakeFrontend) -> None:
    cells = [
        {
            "id": "c1",
            "cell_type": "code",
            "source": "x = 1",
            "execution_count": 3,
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "done\n"}],
        },
        {
            "id": "c2",
            "cell_type": "markdown",
            "source": "# Notes",
            "execution_count": None,
            "outputs": [],
        },
    ]
    msg_id = frontend.execute(
        "from nbagent.notebook import notebook_tools, current_document\n"
        "doc = current_document(bridge)\n"
        "print(type(doc).__name__, doc.client_id)\n"
        "tools = {t.name: t for t in notebook_tools(lambda: current_document(bridge))}\n"
        "print(tools['read_notebook'].call({}).text())\n"
        "print(tools['insert_cell'].call({'source': 'y = 2'}).text())"
    )
    request = frontend.next_request()
    assert request["client_id"] == frontend.client_id
    assert (request["op"], request["args"]) == ("read_notebook", {})
    frontend.reply(request, ok=True, result={"path": "work/analysis.ipynb", "cells": cells})

    # insert_cell with no after_cell_id appends: the kernel reads, then names the last cell.
    read_again = frontend.next_request()
    assert read_again["op"] == "read_notebook"
    frontend.reply(read_again, ok=True, result={"path": "work/analysis.ipynb", "cells": cells})
    insert = frontend.next_request()
    assert insert["op"] == "insert_cell"
    assert insert["args"] == {"source": "y = 2", "cell_type": "code", "after_cell_id": "c2"}
    frontend.reply(insert, ok=True, result={"cell_id": "c3"})

    reply, out = frontend.finish(msg_id)
    assert reply["status"] == "ok", out
    assert f"LiveNotebook {frontend.client_id}" in out
    assert "=== cell 1 of 2 | id: c1 | code | [3] ===\nx = 1\n--- output ---\ndone" in out
    assert "=== cell 2 of 2 | id: c2 | markdown ===" in out
    assert "Inserted code cell 'c3' at the end of the notebook." in out


def test_reply_latency_on_a_busy_kernel(frontend: FakeFrontend) -> None:
    rounds = 20
    msg_id = frontend.execute(
        "import time, statistics\n"
        "from nbagent.notebook import LiveNotebook\n"
        f"doc = LiveNotebook(bridge, {frontend.client_id!r}, 'work/analysis.ipynb')\n"
        "times = []\n"
        f"for _ in range({rounds}):\n"
        "    t = time.perf_counter(); doc.read(); times.append(time.perf_counter() - t)\n"
        "print('ROUNDTRIP_MS', 1000 * statistics.median(times), 1000 * max(times))"
    )
    for _ in range(rounds):
        frontend.reply(frontend.next_request(), ok=True, result={"path": "p.ipynb", "cells": []})
    reply, out = frontend.finish(msg_id)
    assert reply["status"] == "ok", out
    median, worst = map(float, re.search(r"ROUNDTRIP_MS (\S+) (\S+)", out).groups())
    print(
        f"\nrequest -> reply round trip on a busy kernel: median {median:.1f} ms, max {worst:.1f} ms"
    )


def test_conflict_reply_becomes_notebook_conflict(frontend: FakeFrontend) -> None:
    msg_id = frontend.execute(
        "from nbagent.notebook import LiveNotebook, NotebookConflict\n"
        f"doc = LiveNotebook(bridge, {frontend.client_id!r}, 'work/analysis.ipynb')\n"
        "try:\n"
        "    doc.edit_cell('c1', 'x = 2', 'abc123')\n"
        "except NotebookConflict as exc:\n"
        "    print('CONFLICT', exc, '|', exc.current_source)\n"
    )
    request = frontend.next_request()
    assert request["op"] == "edit_cell"
    assert request["args"] == {"cell_id": "c1", "source": "x = 2", "expected_hash": "abc123"}
    frontend.reply(
        request, ok=False, error="conflict", message="cell c1 changed", current_source="x = 10"
    )
    reply, out = frontend.finish(msg_id)
    assert reply["status"] == "ok", out
    assert "CONFLICT cell c1 changed | x = 10" in out


def test_unanswered_request_times_out_clearly(frontend: FakeFrontend) -> None:
    msg_id = frontend.execute(
        "from nbagent.notebook import LiveNotebook\n"
        "from nbagent.tools.base import ToolError\n"
        f"doc = LiveNotebook(bridge, {frontend.client_id!r}, 'work/analysis.ipynb', timeout=0.5)\n"
        "t = time.perf_counter()\n"
        "try:\n"
        "    doc.read()\n"
        "except ToolError as exc:\n"
        "    print('TIMEOUT', round(time.perf_counter() - t, 1), exc)\n"
    )
    request = frontend.next_request()  # seen, never answered
    reply, out = frontend.finish(msg_id)
    assert reply["status"] == "ok", out
    assert "TIMEOUT 0.5 The notebook frontend did not answer the read_notebook request" in out
    # A late reply to the expired request is ignored.
    frontend.reply(request, ok=True, result={"path": "late.ipynb", "cells": []})
    assert "ok" in frontend.run("print('ok')")


def test_stop_and_approval_reach_the_busy_main_thread(frontend: FakeFrontend) -> None:
    msg_id = frontend.execute(
        "import json, threading\n"
        "hook_threads = []\n"
        "def hook(*args): hook_threads.append(threading.current_thread().name)\n"
        "get_ipython().events.register('post_execute', hook)\n"
        "bridge.begin_turn()\n"
        "first = bridge.next_control(timeout=10)\n"
        "second = bridge.next_control(timeout=10)\n"
        "get_ipython().events.unregister('post_execute', hook)\n"
        "print('HOOKS', hook_threads)\n"
        "print('GOT', json.dumps([first, second]), bridge.stop_requested.is_set())\n"
    )
    frontend.send_control({"type": "approval", "call_id": "toolu_1", "decision": "allow"})
    frontend.send_control({"type": "stop"})
    reply, out = frontend.finish(msg_id)
    assert reply["status"] == "ok", out
    got = json.loads(out.split("GOT ", 1)[1].rsplit(" ", 1)[0])
    assert got == [
        {"v": PROTOCOL_VERSION, "type": "approval", "call_id": "toolu_1", "decision": "allow"},
        {"v": PROTOCOL_VERSION, "type": "stop"},
    ]
    assert out.strip().endswith("True")
    # The control handler does not fire IPython's execute hooks on the subshell thread
    # (comm.handle_msg would: matplotlib-inline closes figures on post_execute).
    assert "HOOKS []" in out
    assert "False" in frontend.run("bridge.begin_turn(); print(bridge.stop_requested.is_set())")


def test_path_changed_and_events(frontend: FakeFrontend) -> None:
    frontend.send_control({"type": "path_changed", "path": "work/renamed.ipynb"})
    msg_id = frontend.execute(
        "from nbagent.events import TextDelta\n"
        "t0 = time.monotonic()\n"
        "while bridge.clients[0].path != 'work/renamed.ipynb' and time.monotonic() - t0 < 5:\n"
        "    time.sleep(0.01)\n"
        "print(bridge.clients[0].path)\n"
        "bridge.send_event('turn-1', 'sidebar', TextDelta('hi'))\n"
        "bridge.send_state(False, {'input_tokens': 3})\n"
    )
    event = frontend.iopub(
        lambda m: m["msg_type"] == "comm_msg" and m["content"]["data"].get("type") == "agent_event"
    )
    state = frontend.iopub(
        lambda m: m["msg_type"] == "comm_msg" and m["content"]["data"].get("type") == "state"
    )
    reply, out = frontend.finish(msg_id)
    assert reply["status"] == "ok", out
    assert "work/renamed.ipynb" in out
    assert event["content"]["comm_id"] == frontend.events_comm_id
    assert event["content"]["data"] == {
        "v": PROTOCOL_VERSION,
        "type": "agent_event",
        "turn_id": "turn-1",
        "source": "sidebar",
        "event": {"type": "text_delta", "text": "hi"},
    }
    assert state["content"]["data"] == {
        "v": PROTOCOL_VERSION,
        "type": "state",
        "busy": False,
        "usage": {"input_tokens": 3},
    }


def test_interrupt_ends_a_waiting_request(frontend: FakeFrontend) -> None:
    msg_id = frontend.execute(
        "from nbagent.notebook import LiveNotebook\n"
        f"doc = LiveNotebook(bridge, {frontend.client_id!r}, 'work/analysis.ipynb', timeout=30)\n"
        "t = time.perf_counter()\n"
        "try:\n"
        "    doc.read()\n"
        "except KeyboardInterrupt:\n"
        "    print('INTERRUPTED', round(time.perf_counter() - t, 1), 'pending', len(bridge._pending))\n"
    )
    frontend.next_request()
    time.sleep(0.2)
    frontend.interrupt()
    reply, out = frontend.finish(msg_id)
    assert reply["status"] == "ok", out
    assert "INTERRUPTED" in out and "pending 0" in out


def test_a_revert_runs_on_the_main_thread_after_the_running_cell(frontend: FakeFrontend) -> None:
    """Control messages arrive on the subshell's thread; a revert is queued for the main
    thread, which runs it once the cell in progress has ended, and answers it."""
    frontend.run(
        "import threading\n"
        "order = []\n"
        "def on_revert(client_id, turn):\n"
        "    main = threading.current_thread() is threading.main_thread()\n"
        "    order.append(('revert', turn, main))\n"
        "    bridge.send_revert_result(client_id, turn, True, 'reverted')\n"
        "bridge.set_review_hooks(on_register=None, on_turn_end=None, on_revert=on_revert)"
    )
    msg_id = frontend.execute("time.sleep(1.0); order.append('cell ended')")
    time.sleep(0.3)  # the cell is running
    frontend.send_control({"type": "revert", "turn": 3})
    reply, out = frontend.finish(msg_id)
    assert reply["status"] == "ok", out
    result = frontend.iopub(
        lambda m: (
            m["msg_type"] == "comm_msg" and m["content"]["data"].get("type") == "revert_result"
        )
    )["content"]["data"]
    validate_message(result, "kernel")
    assert (result["client_id"], result["turn"], result["ok"]) == (frontend.client_id, 3, True)
    assert "['cell ended', ('revert', 3, True)]" in frontend.run("print(order)")
    frontend.run("bridge.set_review_hooks(on_register=None, on_turn_end=None, on_revert=None)")


# -- the conversation, after a kernel restart ------------------------------------------


def _handshake(fe: FakeFrontend, path: str) -> None:
    assert fe.listen()["status"] == "ok"
    created = fe.control_request("create_subshell_request", {})
    fe.subshell_id = created["subshell_id"]
    fe.open_control(path)
    fe.next_hello()


def _history(fe: FakeFrontend) -> dict[str, Any]:
    msg = fe.iopub(
        lambda m: (
            m["msg_type"] == "comm_msg"
            and m["content"]["data"].get("type") == "history"
            and m["content"]["data"].get("client_id") == fe.client_id
        )
    )
    data: dict[str, Any] = msg["content"]["data"]
    validate_message(data, "kernel")
    return data


def test_after_a_restart_a_new_client_is_shown_the_saved_conversation(tmp_path: Path) -> None:
    """The history a register gets after a kernel restart is the conversation saved in
    `.nbagent/` that the next turn continues; nbagent is not loaded for it."""
    with FakeAnthropic() as fake:
        fake.enqueue(reply(text("Forty-two, as computed."), usage={"input_tokens": 20}))
        env = {**os.environ, **env_for(fake), "MPLBACKEND": "Agg"}
        env.pop("JPY_SESSION_NAME", None)
        km = KernelManager(kernel_name="python3")
        km.start_kernel(env=env, cwd=str(tmp_path))
        kc = km.blocking_client()
        try:
            kc.start_channels()
            kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
            fe = FakeFrontend(kc)
            _handshake(fe, "work/analysis.ipynb")
            assert _history(fe) == {
                "v": PROTOCOL_VERSION,
                "type": "history",
                "client_id": fe.client_id,
                "origin": "saved",
                "entries": [],
                "omitted": 0,
            }
            fe.run("%load_ext nbagent")
            msg_id = fe.execute("%%agent\nWhat is the answer?")
            # After the turn: the record's pointer, for the notebook's metadata.
            pointer = fe.next_request(timeout=60)
            validate_message(pointer, "kernel")
            assert (pointer["op"], pointer["args"]["key"]) == ("set_notebook_metadata", "nbagent")
            fe.reply(pointer, ok=True, result={})
            done, out = fe.finish(msg_id)
            assert done["status"] == "ok", out
            assert list((tmp_path / ".nbagent").iterdir()), "the conversation was not saved"

            km.restart_kernel(now=True)
            kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
            after = FakeFrontend(kc)  # the page reloaded too: a new client
            _handshake(after, "work/analysis.ipynb")
            history = _history(after)
            assert history["origin"] == "saved" and history["omitted"] == 0
            assert history["entries"] == [
                {"kind": "prompt", "text": "What is the answer?"},
                {"kind": "turn", "blocks": [{"kind": "text", "text": "Forty-two, as computed."}]},
            ]
            out = after.run(
                "import sys; print('loaded', 'nbagent.jupyter.extension' in sys.modules)"
            )
            assert "loaded False" in out
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)


# -- headless ----------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_headless_run_opens_no_comm(tmp_path: Path) -> None:
    """nbclient runs notebooks as nbconvert and papermill do: nobody registers, so
    `%load_ext nbagent` and a `%%agent` turn publish no comm, and neither nbclient
    ("No handler found for comm target 'nbagent.events'") nor the kernel logs one."""
    records = _Records()
    log = logging.getLogger("tests.headless_nbclient")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(records)
    kernel_log = tmp_path / "kernel.log"
    with FakeAnthropic() as fake, kernel_log.open("wb") as kernel_out:
        fake.enqueue(reply(text("The headless answer."), usage={"input_tokens": 20}))
        env = {**os.environ, **env_for(fake), "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
        env.pop("JPY_SESSION_NAME", None)
        km = KernelManager(kernel_name="python3")
        km.start_kernel(env=env, cwd=str(tmp_path), stdout=kernel_out, stderr=kernel_out)
        nb = new_notebook(
            cells=[new_code_cell("%load_ext nbagent"), new_code_cell("%%agent\nSay hello")]
        )
        try:
            NotebookClient(
                nb, km=km, timeout=60, log=log, resources={"metadata": {"path": str(tmp_path)}}
            ).execute()
        finally:
            log.removeHandler(records)
            km.shutdown_kernel(now=True)
    answer = "".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for o in nb.cells[1].outputs
    )
    assert "The headless answer." in answer, nb.cells[1].outputs
    assert len(fake.requests) == 1, fake.requests
    assert not [m for m in records.messages if "comm target" in m], records.messages
    # nbclient logs each message's type at debug level: no comm at all went by.
    types = {m.removeprefix("msg_type: ") for m in records.messages if m.startswith("msg_type:")}
    assert "execute_input" in types and not {t for t in types if t.startswith("comm")}, types
    kernel_said = kernel_log.read_text(errors="replace")
    assert "comm target" not in kernel_said and "nbagent.events" not in kernel_said, kernel_said
