"""Turns started from the labextension's chat sidebar (JupyterLab or Notebook 7).

The sidebar sends its prompt as a silent execute_request, so the turn runs on
the kernel's main thread like a cell (the kernel's stop button works). Events
go to the sidebar over the events comm; approvals and stop come back on the
control comm, which the bridge queues for this thread.
"""

from __future__ import annotations

import threading
from typing import Any

from ..events import ToolCall
from ..pump import pump
from ..transport.broadcast import Broadcaster


def install(shell: Any, bridge: Any) -> None:
    bridge.set_sidebar_handler(lambda data: run_sidebar_turn(shell, bridge, data))


def run_sidebar_turn(shell: Any, bridge: Any, data: dict[str, Any]) -> None:
    from .session import get_session

    session = get_session(shell)
    agent = session.agent
    prompt = str(data.get("prompt") or "").strip()
    decision = data.get("decision")
    broadcast = Broadcaster(bridge, source="sidebar")
    bridge.begin_turn()
    done = threading.Event()

    def forward_stop() -> None:
        # The bridge hears "stop" on the subshell thread; the loop checks
        # agent.stop_requested at each event boundary.
        while not done.is_set():
            if bridge.stop_requested.wait(0.05):
                agent.stop()
                return

    def approve(call: ToolCall) -> str:
        while True:
            msg = bridge.next_control(timeout=0.1)
            if bridge.stop_requested.is_set():
                raise KeyboardInterrupt
            if msg and msg.get("type") == "approval" and msg.get("call_id") == call.id:
                return str(msg.get("decision", "deny"))

    watcher = threading.Thread(target=forward_stop, name="nbagent-sidebar-stop", daemon=True)
    watcher.start()
    bridge.send_state(True, agent.usage)
    try:
        if not prompt and decision is None:
            return
        pump(session.stream_turn(prompt or None, decision=decision, approve=approve), broadcast)
    finally:
        done.set()
        bridge.send_state(False, agent.usage)
