"""The kernel's conversation kept in `.nbagent/`, and replay of `%%agent` cells.

Attached to the kernel's agent session (`attach_conversation`), it
- saves the conversation after every completed turn, from any surface;
- after a kernel restart, continues the saved conversation at the first `%%agent`
  cell, `%agent history` or sidebar turn, as `NBAgent.restore` says (auto, ask, off);
  `%agent resume` does it on demand;
- records each `%%agent` turn (keyed by the cell's raw source and its occurrence in
  this kernel's run), and in headless runs (`NBAgent.replay`: auto; force: always)
  replays a matching recording instead of sending requests; the tools run for real;
- with the labextension, puts a short pointer to the record in the notebook's
  metadata through the live document.

The cell magic calls `begin_cell(raw_source)` right before its turn starts.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..events import Notice
from ..providers.base import Provider
from ..record.keeper import ConversationKeeper
from ..record.location import RecordLocation, locate
from ..record.replay import AnnouncingProvider, RecordingProvider, ReplayProvider, TurnRecorder
from ..record.store import FOLDER_NAME, SavedConversation, TurnRecording, recording_key
from .headless import is_headless

if TYPE_CHECKING:
    from ..agent import Agent
    from ..config import Settings
    from ..loop import Run
    from ..session import Session
    from .session import KernelSession

log = logging.getLogger("nbagent.record")

# A turn that ended like this is a complete recording (not an error, interrupt or budget).
CLEAN_STOPS = frozenset({"end_turn", "stop_sequence", "max_tokens", "max_turns", "refusal"})
METADATA_OP = "set_notebook_metadata"  # the protocol request that writes notebook metadata
METADATA_KEY = "nbagent"

_attached: weakref.WeakKeyDictionary[Session, KernelConversation] = weakref.WeakKeyDictionary()


def attach_conversation(kernel_session: KernelSession, agent: Agent) -> KernelConversation:
    """Install saving, restoring and replay on `agent` (once per agent session)."""
    found = _attached.get(agent.session)
    if found is None:
        found = _attached[agent.session] = KernelConversation(kernel_session.shell, agent.session)
    return found


def conversation_for(kernel_session: KernelSession) -> KernelConversation:
    """The conversation of the kernel session's agent (attached on first use)."""
    agent = kernel_session.agent
    return attach_conversation(kernel_session, agent)


class KernelConversation:
    def __init__(self, shell: Any, session: Session) -> None:
        self.shell = shell
        self.session = session
        self.keeper = ConversationKeeper(self.location)
        self._seen: Counter[str] = Counter()  # %%agent sources run in this kernel so far
        # The cell whose turn starts next: (source, occurrence, thread that ran the cell).
        self._pending: tuple[str, int, int] | None = None
        self._restore_decided = False
        self._announce: list[Notice] = []
        self._recorder: TurnRecorder | None = None
        self._replay: ReplayProvider | None = None
        self.last_replay: ReplayProvider | None = None  # of the last completed turn
        self._pointer_sent: str | None = None
        session.provider_wrapper = self.wrap_provider
        session.turn_end_hooks.append(self.on_turn_end)

    # -- where ------------------------------------------------------------------

    def location(self) -> RecordLocation:
        return locate(bridge=self._bridge(), setting=self._settings().notebook)

    def _settings(self) -> Settings:
        return self.session.resolve()

    def _bridge(self) -> Any:
        kernel = getattr(self.shell, "kernel", None)
        if kernel is None:
            return None
        try:
            from ..transport.bridge import get_bridge

            return get_bridge(kernel)
        except Exception:  # no comm support in this kernel: no frontend
            return None

    # -- entry points for the surfaces -----------------------------------------

    def begin_cell(self, raw_source: str) -> None:
        """A `%%agent` cell (or `%agent` line) with this source, before interpolation,
        starts its turn next: restore first if this is the kernel's first, and key the
        turn's recording (or replay) by the source and its occurrence in this run."""
        occurrence = self._seen[raw_source]
        self._seen[raw_source] += 1
        self._announce += self._decide_restore(raw_source, occurrence)
        self._pending = (raw_source, occurrence, threading.get_ident())

    def ensure_restored(self) -> list[Notice]:
        """Continue the saved conversation now if `restore` says so and nothing has been
        said in this kernel yet (for `%agent history` and the sidebar); what to tell."""
        return self._decide_restore(None, 0)

    def resume(self) -> list[Notice]:
        """`%agent resume`: continue the newest saved conversation other than this one."""
        if self.session.busy:
            return [Notice("A turn is running: resume after it ends.", "warning")]
        self._restore_decided = True
        saved = self.keeper.latest(self.session, other=True)
        if saved is None or not saved.messages:
            where = self.location().folder
            return [Notice(f"No saved conversation to resume in {where}.", "info")]
        self.keeper.adopt(self.session, saved)
        return [Notice(self._continued(saved), "info")]

    # -- restore ----------------------------------------------------------------

    def _decide_restore(
        self, source: str | None, occurrence: int, *, in_turn: bool = False
    ) -> list[Notice]:
        """`in_turn`: called as a turn starts (before its prompt joins the history)."""
        if self._restore_decided:
            return []
        self._restore_decided = True
        if self.session.history or (self.session.busy and not in_turn):
            return []  # already talking, or another surface's turn is running
        try:
            settings = self._settings()
            if settings.restore == "off":
                return []
            if source is not None and self._find(settings, source, occurrence) is not None:
                return []  # a re-run being replayed starts where its recording started
            saved = self.keeper.latest(self.session)
        except Exception as exc:  # an unreadable folder: start fresh, and say so
            log.warning("nbagent: could not read the saved conversation: %s", exc)
            return [Notice(f"The saved conversation could not be read ({exc}).", "warning")]
        if saved is None or not saved.messages:
            return []
        if settings.restore == "ask" and not self._ask(saved):
            return [
                Notice(
                    "A saved conversation was not continued: %agent resume continues it.", "info"
                )
            ]
        self.keeper.adopt(self.session, saved)
        return [Notice(self._continued(saved), "info")]

    def _ask(self, saved: SavedConversation) -> bool:
        from IPython.core.error import StdinNotImplementedError

        question = (
            f"Continue the saved conversation ({_prompts(saved.turns)}, saved "
            f"{_when(saved.updated)})? [y/N] "
        )
        try:
            return input(question).strip().lower() in ("y", "yes")
        except (StdinNotImplementedError, EOFError):  # no one to ask (headless, sidebar)
            return False

    def _continued(self, saved: SavedConversation) -> str:
        return (
            f"Continuing the saved conversation ({_prompts(saved.turns)}, saved "
            f"{_when(saved.updated)}) from {self.location().folder}. "
            "%agent reset starts a new one."
        )

    # -- per turn ---------------------------------------------------------------

    def wrap_provider(self, provider: Provider, settings: Settings) -> Provider:
        """The session's provider wrapper: record a cell's turn, or replay it."""
        # The kernel's first turn from the sidebar or the panel restores here.
        self._announce += self._decide_restore(None, 0, in_turn=True)
        if self.keeper.last_error:
            self._announce.append(Notice(self.keeper.last_error, "warning"))
            self.keeper.last_error = None
        cell = self._pending
        if cell is not None and cell[2] == threading.get_ident():
            self._pending = None  # this turn is the cell's (a panel turn runs elsewhere)
        else:
            cell = None
        self._recorder = self._replay = None
        wrapped = provider
        if cell is not None:
            source, occurrence, _ = cell
            self._recorder = TurnRecorder(source, occurrence)
            recording = self._find(settings, source, occurrence)
            if recording is not None:
                self._replay = ReplayProvider(
                    recording,
                    mismatch=settings.replay_mismatch,
                    live=provider if _can_go_live(provider, settings) else None,
                    where=FOLDER_NAME + "/",
                )
                wrapped = self._replay
            wrapped = RecordingProvider(wrapped, self._recorder)
        announce, self._announce = self._announce, []
        return AnnouncingProvider(wrapped, announce) if announce else wrapped

    def replay_active(self, settings: Settings) -> bool:
        return settings.replay == "force" or (settings.replay == "auto" and is_headless(self.shell))

    def _find(self, settings: Settings, source: str, occurrence: int) -> TurnRecording | None:
        if not self.replay_active(settings):
            return None
        try:
            store, location = self.keeper.store(settings)
            return store.find_recording(location.notebook, recording_key(source, occurrence))
        except Exception as exc:  # a damaged record: run live
            log.warning("nbagent: could not read the replay record: %s", exc)
            return None

    def on_turn_end(self, session: Session, run: Run) -> None:
        """The session's turn-end hook: save the conversation and the recording."""
        recorder, replay = self._recorder, self._replay
        self._recorder = self._replay = None
        self.last_replay = replay
        self.keeper.save(session)
        fully_replayed = replay is not None and not replay.went_live
        if (
            recorder is not None
            and recorder.complete
            and recorder.recording.responses
            and run.stop_reason in CLEAN_STOPS
            and not fully_replayed  # the recording on disk is this turn already
        ):
            try:
                store, location = self.keeper.store(session.settings)
                store.save_recording(location.notebook, recorder.recording)
            except Exception as exc:
                log.warning("nbagent: could not save the replay record: %s", exc)
        self._send_pointer()

    # -- the pointer in the notebook's metadata ---------------------------------

    def _send_pointer(self) -> None:
        """Name the record in the notebook's metadata, through the live document, once
        per conversation. Needs the protocol's `set_notebook_metadata` request."""
        conversation = self.keeper.conversation_id
        if conversation is None or conversation == self._pointer_sent:
            return
        bridge = self._bridge()
        client = bridge.choose_client() if bridge is not None else None
        if client is None or not client.answers_while_busy or not _protocol_has(METADATA_OP):
            return
        pointer = {"record": FOLDER_NAME, "conversation": conversation, "format": 1}
        try:
            bridge.request(
                METADATA_OP,
                {"key": METADATA_KEY, "value": pointer},
                client_id=client.client_id,
                timeout=5.0,
            )
            self._pointer_sent = conversation
        except Exception as exc:  # the notebook closed, an older frontend: no pointer
            log.info("nbagent: could not write the record pointer: %s", exc)


def _can_go_live(provider: Provider, settings: Settings) -> bool:
    """Whether `provider` can answer for real: it has a key, or needs none."""
    from ..providers.anthropic_api import AnthropicProvider

    if isinstance(provider, AnthropicProvider):
        return bool(settings.api_key or settings.auth_token)
    return True  # a provider given in code (tests, other APIs) brings its own access


def _protocol_has(op: str) -> bool:
    try:
        from ..transport.protocol import load_schema

        ops = load_schema()["$defs"]["RequestOp"]["enum"]
    except Exception:
        return False
    return op in ops


def _prompts(n: int) -> str:
    return f"{n} prompt{'s' if n != 1 else ''}"


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp else "earlier"
