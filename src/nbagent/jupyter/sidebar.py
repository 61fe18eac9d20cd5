"""The kernel side of the labextension's chat sidebar (JupyterLab or Notebook 7).

- Turns: the sidebar sends its prompt as a silent execute_request, so the turn runs on
  the kernel's main thread like a cell (the kernel's stop button works). Events go to
  the sidebar over the events comm; approvals and stop come back on the control comm,
  which the bridge queues for this thread.
- History: a client that registers (a page load or reload, a kernel restart) is sent
  the conversation its next turn continues: the kernel's, or after a restart the one
  saved in `.nbagent/` that the first turn will continue (`NBAgent.restore = "auto"`).
  This works before `%load_ext nbagent`: `listen()` installs it.
- Review: when a turn ends, and after a revert, the clients get each turn's changes
  (`KernelSession.turn_summaries()`); a Revert button sends `revert` {turn}, which the
  bridge runs here on the main thread once it is free (`KernelSession.undo_through`).
- MCP: when a turn ends and on register, the clients get the MCP servers, their state
  and tools (`Session.mcp_status()`, what `%agent mcp` prints), if any are configured.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..events import ToolCall
from ..pump import pump
from ..redact import redact
from ..transport.broadcast import Broadcaster

if TYPE_CHECKING:
    from ..transport.bridge import Bridge, Client
    from .session import KernelSession
    from .settings import NBAgent

MAX_ENTRIES = 200  # the newest prompts and turns a history message carries
MAX_TEXT = 20_000  # characters of one prompt or block
MAX_IMAGE_CHARS = 2_000_000  # base64 characters of images in one history message (newest kept)


def install(shell: Any, bridge: Bridge) -> None:
    """At `%load_ext nbagent`: sidebar prompts run here, and the review hooks."""
    bridge.set_sidebar_handler(lambda data: run_sidebar_turn(shell, bridge, data))
    attach(shell, bridge)


def attach(shell: Any, bridge: Bridge) -> None:
    """What clients are sent besides turns: history on register, changes, reverts.
    Needs no loaded extension (the labextension's `listen()` calls it)."""
    bridge.set_review_hooks(
        on_register=lambda client: welcome(shell, bridge, client),
        on_turn_end=lambda: send_turn_end(shell, bridge),
        on_revert=lambda client_id, turn: revert(shell, bridge, client_id, turn),
    )


def run_sidebar_turn(shell: Any, bridge: Any, data: dict[str, Any]) -> None:
    from . import warmup
    from .session import get_session

    warmup.finish_for_turn(shell)  # on the main thread: what the warm-up has not done yet
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


# -- the session, if nbagent is loaded ---------------------------------------------------


def _registered_config(shell: Any) -> NBAgent | None:
    """The `NBAgent` configurable `%load_ext nbagent` registered (None: not loaded)."""
    from .settings import NBAgent

    found = [c for c in getattr(shell, "configurables", []) if isinstance(c, NBAgent)]
    return found[0] if found else None


def loaded_session(shell: Any, *, create: bool = True) -> KernelSession | None:
    """The kernel's agent session if `%load_ext nbagent` ran (else None, and nothing is
    set up: a page that merely registers never loads nbagent). `create=False` only finds
    one that exists (off the main thread, which may be creating it right now)."""
    if shell is None or _registered_config(shell) is None:
        return None
    from . import session as sessions

    if not create:
        return sessions._sessions.get(id(shell))
    return sessions.get_session(shell)


# -- history ----------------------------------------------------------------------------


def welcome(shell: Any, bridge: Bridge, client: Client) -> None:
    """After the hello to a client that registered: the conversation it continues and
    the changes of the turns so far (runs on the subshell thread: reads only)."""
    messages, origin = conversation_shown(shell, client)
    entries, omitted = history_entries(messages)
    bridge.send_history(client.client_id, origin, entries, omitted)
    session = loaded_session(shell, create=False)
    if session is not None:
        bridge.send_changes(session.turn_summaries())
        send_mcp_status(session, bridge)


def conversation_shown(shell: Any, client: Client) -> tuple[list[dict[str, Any]], str]:
    """The messages the client's next turn continues, and where they are ("session":
    in the kernel; "saved": in `.nbagent/`, continued by the kernel's first turn)."""
    session = loaded_session(shell, create=False)
    agent = getattr(session, "_agent", None)
    if session is not None and agent is not None:
        history = list(agent.session.history)
        if history:
            return history, "session"
        from .conversation import conversation_for

        # Restore is decided once per kernel: after that, an empty history is a new
        # conversation (a reset, or a saved one not continued).
        if getattr(conversation_for(session), "_restore_decided", False):
            return [], "session"
    return _saved_to_continue(shell, client), "saved"


@dataclass(frozen=True)
class _OneClient:
    """`locate()` asks a bridge for its client: this one answers with the new client."""

    client: Client

    def choose_client(self) -> Client:
        return self.client


def _saved_to_continue(shell: Any, client: Client) -> list[dict[str, Any]]:
    """The saved conversation the kernel's first turn will continue, if `restore` is
    auto (with "ask" the sidebar cannot ask, so it starts a new one)."""
    from ..config import resolve
    from ..record.location import locate
    from ..record.store import RecordStore
    from .settings import NBAgent, configured

    # Not loaded: a configurable that is never registered reads ipython_config.py only.
    config = _registered_config(shell) or NBAgent(parent=shell)
    settings = resolve(None, configured(config))
    if settings.restore != "auto":
        return []
    location = locate(bridge=_OneClient(client), setting=settings.notebook)
    if not location.folder.is_dir():
        return []
    saved = RecordStore(location.folder).latest_conversation(location.notebook)
    return list(saved.messages) if saved is not None else []


def history_entries(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The conversation as the protocol's history entries (prompts and turn blocks,
    redacted and clipped), newest MAX_ENTRIES; and how many older ones were left out."""
    from ..render.format import clip
    from ..render.history import Prompt, replay

    entries: list[dict[str, Any]] = []
    for entry in replay(messages):
        if isinstance(entry, Prompt):
            text = clip(redact(entry.text.strip()), MAX_TEXT)
            entries.append({"kind": "prompt", "text": text})
            continue
        blocks = []
        for block in entry.blocks:
            if block.kind in ("text", "thinking") and not block.text.strip():
                continue  # thinking the API omitted, empty text
            data = block.to_json()
            data["text"] = clip(redact(data["text"]), MAX_TEXT)
            if block.kind == "tool":
                data["summary"] = redact(data["summary"])
                data["running"] = not block.done  # a call whose result never came
            blocks.append(data)
        if blocks:
            entries.append({"kind": "turn", "blocks": blocks})
    omitted = max(0, len(entries) - MAX_ENTRIES)
    entries = entries[omitted:]
    _limit_images(entries)
    return entries, omitted


def _limit_images(entries: list[dict[str, Any]]) -> None:
    """Keep the newest images up to MAX_IMAGE_CHARS; older ones are dropped (the
    tool's summary still says how many it returned)."""
    room = MAX_IMAGE_CHARS
    for entry in reversed(entries):
        for block in reversed(entry.get("blocks", [])):
            kept = []
            for image in block.get("images", []):
                if len(image["data"]) <= room:
                    room -= len(image["data"])
                    kept.append(image)
            if "images" in block:
                block["images"] = kept


# -- review and revert ---------------------------------------------------------------


def send_changes(shell: Any, bridge: Bridge) -> None:
    """Each turn's changes, newest first, to every registered client."""
    session = loaded_session(shell)
    if session is not None:
        bridge.send_changes(session.turn_summaries())


def send_turn_end(shell: Any, bridge: Bridge) -> None:
    """When a turn ends: its changes, and the MCP servers' state (a server may have
    started, failed or crashed during it)."""
    session = loaded_session(shell)
    if session is not None:
        bridge.send_changes(session.turn_summaries())
        send_mcp_status(session, bridge)


# -- MCP servers ---------------------------------------------------------------------


def refresh_mcp_status(shell: Any) -> None:
    """After `%agent mcp allow` or `restart`: registered clients show the new state now,
    not at the end of the next turn."""
    session = loaded_session(shell, create=False)
    if session is None or getattr(shell, "kernel", None) is None:
        return
    from ..transport.bridge import get_bridge

    bridge = get_bridge(shell.kernel)
    if bridge is not None and bridge.clients:
        send_mcp_status(session, bridge)


_ERROR_STATES = frozenset({"failed", "crashed"})


def send_mcp_status(session: KernelSession, bridge: Bridge) -> None:
    """The MCP servers as `%agent mcp` lists them, when any are configured or were
    started. Cheap and safe off the main thread: it reads the configuration and the
    manager's state, never builds the agent or starts a server."""
    agent = getattr(session, "_agent", None)
    if agent is None:
        return  # no turn has run: no server started, and building the agent is not cheap
    servers = mcp_servers_shown(agent.session.mcp_status())
    if servers:
        bridge.send_mcp_status(servers)


def mcp_servers_shown(statuses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`Session.mcp_status()` as the protocol's McpServerStatus entries (redacted)."""
    servers = []
    for status in statuses:
        server: dict[str, Any] = {
            "name": str(status.get("name", "")),
            "state": str(status.get("state", "")),
            "source": str(status.get("source", "")),
            "transport": str(status.get("transport", "")),
            "tools": [
                {"name": str(t.get("name", "")), "category": str(t.get("category", ""))}
                for t in status.get("tools", [])
            ],
        }
        detail = redact(str(status.get("detail") or ""))
        if detail:
            server["detail"] = detail
            if server["state"] in _ERROR_STATES:
                server["error"] = detail
        servers.append(server)
    return servers


def revert(shell: Any, bridge: Bridge, client_id: str, turn: int) -> None:
    """Undo turn `turn` and every later turn (main thread, the kernel idle); the client
    is told what was restored and what was not, the model gets a note (`undo_through`),
    and every client the new list of changes."""
    from ..errors import AgentBusyError

    session = loaded_session(shell)
    if session is None:
        bridge.send_revert_result(client_id, turn, False, "No changes are recorded in this kernel.")
        return
    try:
        reports = [r for r in session.undo_through(turn) if not r.nothing_to_undo]
    except AgentBusyError:
        message = "A turn is running: revert when it has ended."
        bridge.send_revert_result(client_id, turn, False, message)
        return
    bridge.send_revert_result(
        client_id,
        turn,
        True,
        _revert_message(turn, reports),
        [
            {
                "turn": r.turn,
                "label": r.label,
                "restored": [redact(x) for x in r.restored],
                "not_restored": [redact(x) for x in r.not_restored],
            }
            for r in reports
            if r.turn is not None
        ],
    )
    bridge.send_changes(session.turn_summaries())


def _revert_message(turn: int, reports: list[Any]) -> str:
    if not reports:
        return f"Nothing to revert: turn {turn}'s changes were already undone."
    turns = ", ".join(str(r.turn) for r in reversed(reports))
    missing = sum(len(r.not_restored) for r in reports)
    which = f"turn {turns}" if len(reports) == 1 else f"turns {turns}"
    if missing:
        changes = "1 change" if missing == 1 else f"{missing} changes"
        return f"Reverted {which}; {changes} could not be restored."
    return f"Reverted {which}."
