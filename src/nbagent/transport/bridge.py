"""The kernel side of the nbagent kernel <-> frontend protocol (docs/protocol.md).

Two comms: the frontend opens `nbagent.control` on its own subshell and only sends
on it (register, path_changed, reply, approval, stop, revert); the kernel opens
`nbagent.events` when the first frontend registers, and only sends on it (hello,
history, agent events, notebook requests, state, changes, MCP status, revert results). The
frontend speaks first: until one registers, the kernel publishes nothing, so
headless runs (nbclient, nbconvert, papermill) see no comm at all. On ipykernel 7 a
busy kernel receives control messages on the subshell's thread; the handler here
only parses and routes them (a reply wakes the waiting request, approvals and stops
go on a queue the main thread reads, a revert is queued for the main thread's event
loop, a register is answered with a hello and the conversation it continues).
Tools and user code never run on that thread.

    bridge = get_bridge()            # None outside a kernel (terminal IPython)
    bridge.send_event(turn_id, "cell", event)
    result = bridge.request("read_notebook", {})   # blocks until the frontend replies
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import queue
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..events import Event, Usage, event_to_dict
from ..tools.base import ToolError
from . import protocol
from .protocol import CONTROL_TARGET, EVENTS_TARGET, PROTOCOL_VERSION

log = logging.getLogger("nbagent.bridge")

DEFAULT_TIMEOUT = 10.0


class FrontendError(ToolError):
    """The frontend answered a request with `ok: false`."""

    def __init__(self, code: str, message: str, reply: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reply = reply or {}


@dataclass(frozen=True)
class Client:
    """A registered frontend (one notebook panel with the labextension)."""

    client_id: str
    path: str | None
    subshell_id: str | None
    comm_id: str
    session: str | None  # the frontend's kernel-connection session (header.session)
    order: int  # registration order: higher is more recent

    @property
    def answers_while_busy(self) -> bool:
        """Replies reach a busy kernel only on a subshell (ipykernel 7)."""
        return self.subshell_id is not None


class Bridge:
    """One per kernel: the events comm, the control target, the client registry."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.stop_requested = threading.Event()
        self._lock = threading.RLock()
        self._clients: dict[str, Client] = {}
        self._pending: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._control: queue.Queue[dict[str, Any]] = queue.Queue()
        self._control_comms: dict[str, Any] = {}
        self._events: Any = None
        self._order = itertools.count(1)
        self._sidebar_handler: Callable[[dict[str, Any]], Any] | None = None
        # Installed by the surfaces (nbagent.jupyter.sidebar); the transport knows no session.
        self._register_hook: Callable[[Client], None] | None = None
        self._turn_end_hook: Callable[[], None] | None = None
        self._revert_handler: Callable[[str, int], None] | None = None
        self._reverts: queue.Queue[tuple[str, int]] = queue.Queue()
        self._started = False
        # Check every message against the protocol schema (logs only; off by default).
        self._check = protocol.debug_enabled()

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Listen for frontends: register the control target (idempotent). Nothing is
        published: the events comm opens when a frontend registers."""
        with self._lock:
            if self._started:
                return
            self.kernel.comm_manager.register_target(CONTROL_TARGET, self._on_control_open)
            self._started = True

    def hello(self, client_id: str | None = None) -> dict[str, Any]:
        """The kernel's hello: protocol version, kernel, nbagent, subshells, and the
        client whose register it answers (None when no register asked for it)."""
        from .._version import __version__

        return {
            "v": PROTOCOL_VERSION,
            "type": "hello",
            "client_id": client_id,
            "kernel_id": _kernel_id(),
            "nbagent": __version__,
            "subshells": bool(getattr(self.kernel, "_supports_kernel_subshells", False)),
        }

    def announce(self) -> None:
        """Open a new events comm with a hello naming no client (closing the old one).

        Only frontends of protocol v2 ask for this (they waited for the kernel to speak
        first): the hello tells them this kernel speaks another version."""
        with self._lock:
            old, self._events = self._events, None
            if old is not None:
                with contextlib.suppress(Exception):
                    old.close()
            self._events = self._open_events(self.hello())

    def _open_events(self, hello: dict[str, Any]) -> Any:
        import comm

        if self._check:
            protocol.check_message(hello, "kernel")
        return comm.create_comm(target_name=EVENTS_TARGET, data=hello)

    def _say_hello(self, client_id: str) -> None:
        """Answer a register: the hello opens the events comm, or goes on it when open."""
        hello = self.hello(client_id)
        with self._lock:
            if self._events is None or getattr(self._events, "_closed", False):
                self._events = self._open_events(hello)
                return
            events = self._events
        if self._check:
            protocol.check_message(hello, "kernel")
        events.send(hello)

    def unload(self) -> None:
        """The extension was unloaded: sidebar prompts are refused until it loads again.

        The transport stays: frontends registered with the kernel, not with the
        extension, and would not know to register again after a later `%load_ext`."""
        self.set_sidebar_handler(None)

    def close(self) -> None:
        """Unregister the control target, close the comms, fail pending requests."""
        global _BRIDGE
        with self._lock:
            if self._started:
                with contextlib.suppress(Exception):
                    self.kernel.comm_manager.unregister_target(
                        CONTROL_TARGET, self._on_control_open
                    )
            self._started = False
            comms = [self._events, *self._control_comms.values()]
            self._events = None
            self._control_comms.clear()
            self._clients.clear()
            pending = list(self._pending.values())
            self._pending.clear()
        for c in comms:
            if c is not None:
                with contextlib.suppress(Exception):
                    c.close()
        for q in pending:
            q.put({"ok": False, "error": "unloaded", "message": "nbagent was unloaded."})
        with _BRIDGE_LOCK:
            if _BRIDGE is self:
                _BRIDGE = None

    # -- clients --------------------------------------------------------------

    @property
    def clients(self) -> list[Client]:
        """Registered clients, most recent first (a snapshot; empty when none)."""
        with self._lock:
            return sorted(self._clients.values(), key=lambda c: c.order, reverse=True)

    def choose_client(self, path: str | None = None) -> Client | None:
        """The client to address: among those (showing `path`, if given), the one whose
        kernel connection sent the request being handled (the tab that ran the cell
        or sent the sidebar prompt), else the most recently registered."""
        candidates = [c for c in self.clients if path is None or c.path == path]
        if not candidates:
            return None
        session = self._parent_session()
        if session:
            for c in candidates:
                if c.session == session:
                    return c
        return candidates[0]

    def _parent_session(self) -> str | None:
        try:
            parent = self.kernel.get_parent()
        except Exception:
            return None
        header = parent.get("header") if isinstance(parent, dict) else None
        return header.get("session") if isinstance(header, dict) else None

    # -- kernel -> frontend ---------------------------------------------------

    def send_event(self, turn_id: str, source: str, event: Event) -> None:
        """Send one loop event; a no-op while no frontend has registered."""
        if not self._clients:
            return
        self._send(
            {
                "v": PROTOCOL_VERSION,
                "type": "agent_event",
                "turn_id": turn_id,
                "source": source,
                "event": event_to_dict(event),
            }
        )

    def turn_ended(self) -> None:
        """A turn (any surface) ended: tell the registered clients what it changed."""
        hook = self._turn_end_hook
        if hook is None or not self._clients:
            return
        try:
            hook()
        except Exception:  # a review list must never fail the turn that just ended
            log.exception("nbagent: could not send the turn's changes")

    def send_history(
        self, client_id: str, origin: str, entries: list[dict[str, Any]], omitted: int = 0
    ) -> None:
        """The conversation a client's next turn continues (after its register)."""
        self._send(
            {
                "v": PROTOCOL_VERSION,
                "type": "history",
                "client_id": client_id,
                "origin": origin,
                "entries": entries,
                "omitted": omitted,
            }
        )

    def send_changes(self, turns: list[dict[str, Any]]) -> None:
        """Each turn's changes, newest first; a no-op while no frontend has registered."""
        if not self._clients:
            return
        self._send({"v": PROTOCOL_VERSION, "type": "changes", "turns": turns})

    def send_mcp_status(self, servers: list[dict[str, Any]]) -> None:
        """The MCP servers, their state and tools; a no-op while no frontend has registered."""
        if not self._clients:
            return
        self._send({"v": PROTOCOL_VERSION, "type": "mcp_status", "servers": servers})

    def send_revert_result(
        self,
        client_id: str,
        turn: int,
        ok: bool,
        message: str,
        reports: list[dict[str, Any]] | None = None,
    ) -> None:
        """The answer to a client's revert."""
        self._send(
            {
                "v": PROTOCOL_VERSION,
                "type": "revert_result",
                "client_id": client_id,
                "turn": turn,
                "ok": ok,
                "message": message,
                "reports": reports or [],
            }
        )

    def send_state(self, busy: bool, usage: Usage | dict[str, Any] | None = None) -> None:
        """Send the session totals (after each turn); a no-op while no frontend has registered."""
        if not self._clients:
            return
        data: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": "state", "busy": busy}
        if isinstance(usage, Usage):
            usage_dict = dataclasses.asdict(usage)
            usage_dict.pop("type", None)
            usage_dict["total_tokens"] = usage.total_tokens
            data["usage"] = usage_dict
        elif usage is not None:
            data["usage"] = dict(usage)
        self._send(data)

    def request(
        self,
        op: str,
        args: dict[str, Any],
        client_id: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        """Send a notebook request to one client and block until it replies.

        Returns the reply's `result`. Raises ToolError when no client can answer or
        none answers within `timeout` seconds, and FrontendError (a ToolError with
        `.code`) when the reply has `ok: false`. A KeyboardInterrupt (the kernel's
        interrupt) ends the wait.
        """
        client = self._client(client_id)
        if client.subshell_id is None and threading.current_thread() is threading.main_thread():
            raise ToolError(
                "The notebook frontend cannot answer while the kernel is busy: this kernel "
                "does not support subshells (ipykernel >= 7 and JupyterLab >= 4.4 are needed)."
            )
        request_id = uuid.uuid4().hex
        answer: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1)
        with self._lock:
            self._pending[request_id] = answer
        try:
            self._send(
                {
                    "v": PROTOCOL_VERSION,
                    "type": "request",
                    "id": request_id,
                    "client_id": client.client_id,
                    "op": op,
                    "args": args,
                }
            )
            try:
                reply = answer.get(timeout=timeout)
            except queue.Empty:
                raise ToolError(
                    f"The notebook frontend did not answer the {op} request within "
                    f"{timeout:g} s (is the notebook still open, with the nbagent extension "
                    "enabled?)."
                ) from None
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
        if reply.get("ok"):
            result = reply.get("result")
            return result if isinstance(result, dict) else {}
        code = str(reply.get("error") or "error")
        message = str(reply.get("message") or f"the notebook frontend refused {op} ({code})")
        raise FrontendError(code, message, reply)

    def _client(self, client_id: str | None) -> Client:
        if client_id is None:
            client = self.choose_client()
        else:
            with self._lock:
                client = self._clients.get(client_id)
        if client is None:
            if client_id is None:
                raise ToolError(
                    "No notebook frontend with the nbagent extension is connected to this kernel."
                )
            raise ToolError(
                "The notebook frontend that showed this notebook has disconnected "
                "(tab closed or reloaded); try again."
            )
        return client

    def _send(self, data: dict[str, Any]) -> None:
        if self._check:
            protocol.check_message(data, "kernel")
        with self._lock:
            if self._events is None or getattr(self._events, "_closed", False):
                # A frontend closed it (a connection that had not registered its
                # target): reopen, so registered clients adopt the new comm.
                self._events = self._open_events(self.hello())
            events = self._events
        events.send(data)

    # -- frontend -> kernel (runs on the subshell thread: parse and route only) --

    def next_control(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next approval or stop message from a frontend, or None after `timeout` s."""
        try:
            return self._control.get(timeout=timeout)
        except queue.Empty:
            return None

    def begin_turn(self) -> None:
        """Clear the stop flag (and stale stop messages) at the start of a turn."""
        self.stop_requested.clear()
        kept = []
        while True:
            try:
                msg = self._control.get_nowait()
            except queue.Empty:
                break
            if msg.get("type") != "stop":
                kept.append(msg)
        for msg in kept:
            self._control.put(msg)

    def _on_control_open(self, comm: Any, msg: dict[str, Any]) -> None:
        # comm.handle_msg would fire IPython's pre/post_execute hooks on this thread
        # (matplotlib-inline flushes and closes figures on post_execute, while the
        # main thread may be drawing one): route the data ourselves instead.
        comm.handle_msg = lambda m: self._on_control_msg(comm, m)
        comm.on_close(lambda m: self._on_control_close(comm))
        with self._lock:
            self._control_comms[comm.comm_id] = comm
        self._on_control_msg(comm, msg)

    def _on_control_msg(self, comm: Any, msg: dict[str, Any]) -> None:
        try:
            data = msg.get("content", {}).get("data")
            if not isinstance(data, dict):
                return
            header = msg.get("header") or {}
            self.handle_control(data, comm_id=comm.comm_id, session=header.get("session"))
        except Exception:  # never let a bad message kill the subshell's handler
            log.exception("nbagent: could not handle a control message")

    def _on_control_close(self, comm: Any) -> None:
        with self._lock:
            self._control_comms.pop(comm.comm_id, None)
            for cid in [c.client_id for c in self._clients.values() if c.comm_id == comm.comm_id]:
                del self._clients[cid]

    def handle_control(
        self, data: dict[str, Any], *, comm_id: str = "", session: str | None = None
    ) -> None:
        """Route one control message (thread-safe; public for tests and other transports)."""
        if self._check:
            protocol.check_message(data, "frontend")
        kind = data.get("type")
        if kind == "reply":
            with self._lock:
                waiting = self._pending.get(str(data.get("id")))
            if waiting is None:
                log.debug("nbagent: reply to an unknown or expired request %s", data.get("id"))
                return
            with contextlib.suppress(queue.Full):
                waiting.put_nowait(data)
        elif kind == "register":
            client_id = data.get("client_id")
            if not isinstance(client_id, str) or not client_id:
                log.warning("nbagent: register without a client_id ignored")
                return
            client = None
            if data.get("v") == PROTOCOL_VERSION:
                client = Client(
                    client_id=client_id,
                    path=_str_or_none(data.get("path")),
                    subshell_id=_str_or_none(data.get("subshell_id")),
                    comm_id=comm_id,
                    session=session,
                    order=next(self._order),
                )
                with self._lock:
                    self._clients[client_id] = client
            else:
                # Another version: it would misread requests. Its hello says why.
                log.debug("nbagent: register of protocol v%r not accepted", data.get("v"))
            self._say_hello(client_id)
            hook = self._register_hook
            if client is not None and hook is not None:
                try:
                    hook(client)  # the conversation it continues, and the turns' changes
                except Exception:
                    log.exception("nbagent: could not send a new client its history")
        elif kind == "path_changed":
            with self._lock:
                targets = [
                    c
                    for c in self._clients.values()
                    if c.client_id == data.get("client_id")
                    or ("client_id" not in data and c.comm_id == comm_id)
                ]
                for c in targets:
                    self._clients[c.client_id] = dataclasses.replace(
                        c, path=_str_or_none(data.get("path"))
                    )
        elif kind == "stop":
            self.stop_requested.set()
            self._control.put(data)
        elif kind == "approval":
            self._control.put(data)
        elif kind == "revert":
            turn = data.get("turn")
            with self._lock:
                sender = next((c for c in self._clients.values() if c.comm_id == comm_id), None)
            if sender is None or not isinstance(turn, int) or isinstance(turn, bool):
                log.warning("nbagent: revert from an unregistered client or without a turn")
                return
            self._reverts.put((sender.client_id, turn))
            self._to_main(self.run_reverts)
        else:
            log.debug("nbagent: unknown control message type %r", kind)

    def _to_main(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the main thread once it is free: the kernel's event loop
        runs it between shell messages, so after a running cell or turn, never during
        one. (Tornado's add_callback is the one call that is safe from another thread.)"""
        loop = getattr(self.kernel, "io_loop", None)
        if loop is None:
            log.warning("nbagent: no kernel event loop to run a revert on")
            return
        loop.add_callback(callback)

    def run_reverts(self) -> None:
        """Run the queued reverts (main thread), answering each with a revert_result."""
        while True:
            try:
                client_id, turn = self._reverts.get_nowait()
            except queue.Empty:
                return
            handler = self._revert_handler
            try:
                if handler is None:
                    self.send_revert_result(
                        client_id, turn, False, "nbagent is not loaded: there is nothing to revert."
                    )
                else:
                    handler(client_id, turn)
            except Exception as exc:
                log.exception("nbagent: revert of turn %s failed", turn)
                with contextlib.suppress(Exception):
                    self.send_revert_result(client_id, turn, False, f"The revert failed: {exc}")

    # -- surfaces ---------------------------------------------------------------

    def set_sidebar_handler(self, handler: Callable[[dict[str, Any]], Any] | None) -> None:
        """Install the function that runs a sidebar prompt (see `sidebar_turn`)."""
        self._sidebar_handler = handler

    def set_review_hooks(
        self,
        *,
        on_register: Callable[[Client], None] | None,
        on_turn_end: Callable[[], None] | None,
        on_revert: Callable[[str, int], None] | None,
    ) -> None:
        """Install what a new client is sent after its hello (history, changes; runs on
        the subshell thread), what is sent when a turn ends (changes), and the function
        that reverts turn N for a client (runs on the main thread)."""
        self._register_hook = on_register
        self._turn_end_hook = on_turn_end
        self._revert_handler = on_revert


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _kernel_id() -> str | None:
    """The kernel id jupyter_server gave this kernel (from `kernel-<id>.json`)."""
    try:
        from ipykernel.connect import get_connection_file

        name = os.path.basename(get_connection_file())
    except Exception:
        return None
    match = re.fullmatch(r"kernel-(.+)\.json", name)
    return match.group(1) if match else None


# -- module API ------------------------------------------------------------------

_BRIDGE: Bridge | None = None
_BRIDGE_LOCK = threading.Lock()


def get_bridge(kernel: Any = None) -> Bridge | None:
    """The kernel's bridge, created (control target registered, nothing published) on
    first use; None outside a Jupyter kernel (terminal IPython, plain Python)."""
    global _BRIDGE
    if _BRIDGE is not None:
        return _BRIDGE
    if kernel is None:
        kernel = _current_kernel()
        if kernel is None:
            return None
    with _BRIDGE_LOCK:
        if _BRIDGE is None:
            bridge = Bridge(kernel)
            bridge.start()
            _BRIDGE = bridge
        return _BRIDGE


def _current_kernel() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None or not hasattr(kernel, "comm_manager"):
        return None
    return kernel


__all__ = [
    "Bridge",
    "Client",
    "FrontendError",
    "get_bridge",
]
