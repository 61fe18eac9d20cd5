"""The widgets of one assistant turn, updated as its events arrive.

The turn is a `Transcript` rendered like the cell output: one live `HTML` widget
shows the newest part and is updated at most every `interval` seconds (a timer
sends the last update when events pause); completed parts are frozen into their
own widgets once the live part grows past `window_chars`, so an update re-sends
a bounded window. Rich outputs of a tool (plots, tables) are shown after its line.
Events arrive on the turn's worker thread; a lock keeps the widgets consistent
with the timer's thread.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import ipywidgets as widgets

from ...events import Event, ToolResultEvent, TurnEnd
from ...render.transcript import Block, Transcript
from ...render.window import LiveWindow
from .html import blocks_html
from .outputs import bundle_widget, image_widget
from .style import css


class TurnView:
    """The widgets of one assistant turn (including its resumptions after approvals)."""

    def __init__(
        self,
        transcript: Transcript,
        *,
        interval: float = 0.1,
        window_chars: int = 2000,
    ) -> None:
        self.transcript = transcript
        self.interval = interval
        self.window_chars = window_chars
        self.box = css(widgets.VBox(), "turn")
        self.finished = False
        self.updates = 0  # live-widget updates sent (bounded by `interval`)
        self._lock = threading.RLock()
        self._live: Any = None  # the HTML widget of the live window
        self.window = LiveWindow(self.transcript, window_chars)
        self._last_update = 0.0
        self._dirty = False
        self._timer: threading.Timer | None = None
        self._pending_outputs: list[dict[str, Any]] = []  # on_display bundles of the running tool

    # -- events -------------------------------------------------------------

    def handle(self, event: Event) -> None:
        with self._lock:
            self.transcript.add(event)
            self._dirty = True
            end = self.window.freezable_end()
            if end is not None:
                self._freeze(end)
            if isinstance(event, ToolResultEvent):
                self._show_tool_outputs(event)
            if isinstance(event, TurnEnd):
                if event.stop_reason == "awaiting_approval":
                    self._update(status="waiting for your approval…")
                else:
                    self.finish()
                return
            self._maybe_update()

    def show_bundles(self, bundles: list[dict[str, Any]]) -> None:
        """Rich outputs of the running tool (plots, tables): shown after its line."""
        with self._lock:
            self._pending_outputs.extend(b for b in bundles if b)

    def finish(self) -> None:
        with self._lock:
            self._cancel_timer()
            if self._pending_outputs:
                self._add_widgets(self._take_pending_widgets(), after=len(self.transcript.blocks))
            self._update(footer=self.transcript.footer())
            self.finished = True

    def html(self) -> str:
        with self._lock:
            return "\n".join(c.value for c in self.box.children if isinstance(c, widgets.HTML))

    # -- internals ----------------------------------------------------------

    def _show_tool_outputs(self, event: ToolResultEvent) -> None:
        index = self._block_index(event.call.id)
        if self._pending_outputs:
            new = self._take_pending_widgets()
        else:
            block = self.transcript.blocks[index] if index is not None else None
            new = [
                image_widget(i["data"], i["media_type"]) for i in (block.images if block else [])
            ]
        new = [w for w in new if w is not None]
        if new:
            self._add_widgets(
                new, after=len(self.transcript.blocks) if index is None else index + 1
            )

    def _take_pending_widgets(self) -> list[Any]:
        bundles, self._pending_outputs = self._pending_outputs, []
        return [w for w in (bundle_widget(b) for b in bundles) if w is not None]

    def _add_widgets(self, new: list[Any], *, after: int) -> None:
        """Show `new` after block `after - 1`: freeze up to there, insert before the live part."""
        self._freeze(after)
        children = list(self.box.children)
        if self._live is not None and self._live in children:
            at = children.index(self._live)
            children[at:at] = new
        else:
            children.extend(new)
        self.box.children = tuple(children)

    def _block_index(self, call_id: str) -> int | None:
        blocks = self.transcript.blocks
        for i in range(len(blocks) - 1, -1, -1):
            if blocks[i].kind == "tool" and blocks[i].call_id == call_id:
                return i
        return None

    def _freeze(self, end: int) -> None:
        blocks = self.window.take(end)
        if blocks:
            self._show(self._render(blocks))
            self._live = None

    def _maybe_update(self) -> None:
        wait = self.interval - (time.monotonic() - self._last_update)
        if wait <= 0:
            self._update()
        elif self._timer is None:
            # A trailing update, so the last events show even if no more arrive soon.
            self._timer = threading.Timer(wait, self._on_timer)
            self._timer.daemon = True
            self._timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            if self._dirty and not self.finished:
                self._update()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _update(self, *, status: str | None = None, footer: str = "") -> None:
        blocks = self.window.blocks
        if status is None:
            status = "" if footer else self.transcript.status
        value = self._render(blocks, status=status, footer=footer)
        if value or self._live is not None:
            self._show(value)
            self.updates += 1
        self._last_update = time.monotonic()
        self._dirty = False

    def _render(self, blocks: list[Block], *, status: str = "", footer: str = "") -> str:
        return blocks_html(
            blocks, show_thinking=self.transcript.show_thinking, status=status, footer=footer
        )

    def _show(self, value: str) -> None:
        if self._live is None:
            self._live = css(widgets.HTML(value=value), "html")
            self.box.children = (*self.box.children, self._live)
        elif self._live.value != value:
            self._live.value = value
