"""Render a turn's events into the running cell's output.

One live display handle shows the newest part of the turn and is updated in
place at most every `interval` seconds. What came before it is frozen into its
own output once it grows past `window_chars`, so each update re-sends a bounded
window, not the whole transcript. While text streams, an update waits until the
new text is at least `growth` times the live window (or `max_latency` passed),
so re-sent bytes stay a bounded multiple of the text, fast stream or slow.

Every bundle carries text/plain: the full text in frozen and final outputs (what
headless runs and plain frontends keep), a one-line progress note in the
transient updates that only rich frontends show.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..events import Event, TextDelta, ThinkingDelta, TurnEnd
from ..render.transcript import TURN_MIME, Block, Transcript
from ..render.window import LiveWindow

DisplayFn = Callable[..., Any]


class CellOutput:
    def __init__(
        self,
        transcript: Transcript,
        *,
        interval: float = 0.1,
        window_chars: int = 1500,
        growth: float = 1.0,
        max_latency: float = 1.0,
        rich_mime: bool = False,
        display: DisplayFn | None = None,
    ) -> None:
        if display is None:
            from IPython.display import display as ipython_display

            display = ipython_display
        self.transcript = transcript
        self.interval = interval
        self.window_chars = window_chars
        self.growth = growth
        self.max_latency = max_latency
        self.rich_mime = rich_mime  # the labextension renders TURN_MIME; others get Markdown
        self._display = display
        self.window = LiveWindow(transcript, window_chars)
        self._handle: Any = None
        self._last_update = 0.0
        self._chars_seen = 0  # text and thinking characters so far
        self._chars_at_update = 0

    # -- events -------------------------------------------------------------

    def handle(self, event: Event) -> None:
        self.transcript.add(event)
        streaming = isinstance(event, TextDelta | ThinkingDelta)
        if isinstance(event, TextDelta | ThinkingDelta):
            self._chars_seen += len(event.text)
        end = self.window.freezable_end()
        if end is not None:
            self._freeze(end)
        if isinstance(event, TurnEnd):
            self.finish()
            return
        now = time.monotonic()
        since = now - self._last_update
        if since < self.interval:
            return
        if streaming:
            new = self._chars_seen - self._chars_at_update
            if new < self.growth * self.window.chars() and since < self.max_latency:
                return
        self._update()

    def show_bundles(self, bundles: list[dict[str, Any]]) -> None:
        """Show rich outputs (plots, tables) a tool produced, in order."""
        self._freeze_all()
        for bundle in bundles:
            if "text/plain" not in bundle:
                bundle = {**bundle, "text/plain": "<" + ", ".join(sorted(bundle)) + " output>"}
            self._display(bundle, raw=True)

    def finish(self) -> None:
        self._update(final=True)

    # -- internals ----------------------------------------------------------

    def _freeze_all(self) -> None:
        self._freeze(len(self.transcript.blocks))

    def _freeze(self, end: int) -> None:
        """Give the live handle its final content and start a new one after it."""
        blocks = self.window.take(end)
        if blocks:
            self._show(self._bundle(blocks, final=True))
            self._handle = None

    def _update(self, final: bool = False) -> None:
        blocks = self.window.blocks
        status = "" if final else self.transcript.status
        footer = self.transcript.footer() if final else ""
        if not blocks and not status and not footer:
            return
        self._show(self._bundle(blocks, status=status, footer=footer, final=final))
        self._last_update = time.monotonic()
        self._chars_at_update = self._chars_seen

    def _show(self, bundle: dict[str, Any]) -> None:
        if self._handle is None:
            self._handle = self._display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def _bundle(
        self, blocks: list[Block], *, status: str = "", footer: str = "", final: bool = False
    ) -> dict[str, Any]:
        t = self.transcript
        if final:
            plain = t.plain(blocks) if blocks else ""
            tail = f"-- {footer}" if footer else ""
            bundle: dict[str, Any] = {"text/plain": "\n\n".join(x for x in (plain, tail) if x)}
        else:
            # Transient: replaced by the final bundle; plain frontends only keep that.
            size = sum(len(b.text) for b in blocks)
            bundle = {"text/plain": f"[nbagent: {status or 'working…'} {size:,} chars so far]"}
        if self.rich_mime:
            data = t.json(blocks, footer=footer or None)
            if status:
                data["status"] = status
            bundle[TURN_MIME] = data
        else:
            md = t.markdown(blocks) if blocks else ""
            tail_md = "\n\n".join(
                x
                for x in (
                    f"*⏳ {status}*" if status else "",
                    f"<sub>{footer}</sub>" if footer else "",
                )
                if x
            )
            bundle["text/markdown"] = "\n\n".join(x for x in (md, tail_md) if x)
        return bundle
