"""Mirror a turn's events to a registered labextension chat (JupyterLab, Notebook 7)."""

from __future__ import annotations

import uuid
from typing import Any

from ..events import Event, TurnEnd


class Broadcaster:
    def __init__(self, bridge: Any, source: str) -> None:
        self.bridge = bridge
        self.source = source
        self.turn_id = uuid.uuid4().hex

    @property
    def rich_frontend(self) -> bool:
        """A labextension client is registered: it renders the nbagent MIME type."""
        return self.bridge is not None and bool(self.bridge.clients)

    def __call__(self, event: Event) -> None:
        if self.bridge is not None:
            self.bridge.send_event(self.turn_id, self.source, event)
            if isinstance(event, TurnEnd):
                self.bridge.turn_ended()  # what the turn changed, for the sidebar's review


def broadcaster(shell: Any, source: str) -> Broadcaster:
    bridge = None
    if getattr(shell, "kernel", None) is not None:
        try:
            from .bridge import get_bridge

            bridge = get_bridge(shell.kernel)
        except ImportError:
            bridge = None
    return Broadcaster(bridge, source)
