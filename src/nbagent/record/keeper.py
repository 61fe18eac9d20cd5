"""Which saved conversation a session's history is, saved after each completed turn.

A session's history is one list for the life of a conversation: `reset()` replaces
it with a new list. So the keeper knows a new conversation began when the list it
saved last is no longer the session's, and gives it a new id; the old one stays on
disk for `%agent resume`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from .location import RecordLocation
from .store import RecordStore, SavedConversation, new_conversation_id

log = logging.getLogger("nbagent.record")


class ConversationKeeper:
    """Saves `session.history` where `locate()` says, and restores saved ones into it.

    `session` is a `nbagent.session.Session` (anything with `history`, `usage` and
    `settings`).
    """

    def __init__(self, locate: Callable[[], RecordLocation]) -> None:
        self.locate = locate
        self.conversation_id: str | None = None
        self.created = 0.0
        self._saved_list: list[dict[str, Any]] | None = None  # the history list saved last
        self.last_error: str | None = None  # why the last save failed (shown once)

    def store(self, settings: Any = None) -> tuple[RecordStore, RecordLocation]:
        location = self.locate()
        cap_mb = getattr(settings, "record_max_mb", None)
        max_bytes = int(cap_mb * 1_000_000) if cap_mb else None
        return RecordStore(location.folder, max_bytes=max_bytes), location

    def is_current(self, session: Any) -> bool:
        """Whether the session's history is the conversation saved (or adopted) last."""
        return self._saved_list is not None and session.history is self._saved_list

    def save(self, session: Any) -> None:
        """Save the session's conversation (a turn just completed); never raises."""
        if not session.history:
            return
        if not self.is_current(session):  # a new conversation (first turn, or after reset)
            self.conversation_id = new_conversation_id()
            self.created = time.time()
            self._saved_list = session.history
        assert self.conversation_id is not None
        try:
            store, location = self.store(session.settings)
            store.save_conversation(
                SavedConversation(
                    id=self.conversation_id,
                    notebook=location.notebook,
                    messages=session.history,
                    created=self.created,
                    updated=time.time(),
                    usage=_usage_dict(session.usage),
                )
            )
            self.last_error = None
        except Exception as exc:  # a full disk or a read-only folder must not fail the turn
            log.warning("nbagent: could not save the conversation: %s", exc)
            self.last_error = f"The conversation could not be saved ({type(exc).__name__}: {exc})."

    def latest(self, session: Any, *, other: bool = False) -> SavedConversation | None:
        """The newest saved conversation here; `other`: not the one the session holds."""
        store, location = self.store()
        exclude = self.conversation_id if other and self.is_current(session) else None
        return store.latest_conversation(location.notebook, exclude=exclude)

    def adopt(self, session: Any, saved: SavedConversation) -> None:
        """Make `saved` the session's conversation: later turns continue (and save) it."""
        session.history = copy.deepcopy(saved.messages)
        self.conversation_id = saved.id
        self.created = saved.created
        self._saved_list = session.history


def _usage_dict(usage: Any) -> dict[str, Any]:
    try:
        return dataclasses.asdict(usage)
    except TypeError:
        return {}
