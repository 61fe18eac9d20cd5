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

The output shows a status line as soon as it is created, so a cell says it is
running before the turn pays for its first imports. Rich outputs a tool displays
(figures, tables) wait for that tool's result: its line is frozen with its result
summary first, and the outputs follow it, as in the chat panel.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..events import Event, TextDelta, ThinkingDelta, ToolResultEvent, TurnEnd, TurnStart
from ..render.transcript import TURN_MIME, Block, Transcript
from ..render.window import LiveWindow

DisplayFn = Callable[..., Any]

STARTING = "starting…"


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
        self._chars_seen = 0  # text and thinking characters so far
        self._chars_at_update = 0
        # Bundles a running tool displayed: shown after its line once its result is in.
        self._pending: list[dict[str, Any]] = []
        self._show(self._starting_bundle())  # before anything else can keep the cell blank
        self._last_update = time.monotonic()

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
        if isinstance(event, ToolResultEvent) and self._pending:
            self._show_pending(event.call.id)
        if isinstance(event, TurnStart):  # from "starting…" to the turn's own status
            self._update()
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
        """Show rich outputs (plots, tables) a tool produced, in order, after its line.

        While a tool call is running they wait for its result, so the line above
        them is final (result summary, not "running"); otherwise they show at once.
        """
        for bundle in bundles:
            if "text/plain" not in bundle:
                bundle = {**bundle, "text/plain": "<" + ", ".join(sorted(bundle)) + " output>"}
            self._pending.append(bundle)
        if self._first_running_tool() is None:
            self._show_pending()

    def finish(self) -> None:
        if self._pending:
            self._freeze_all()
            self._display_pending()
        self._update(final=True)

    def abort(self, message: str) -> None:
        """End before the turn started (a bad option, no key): the status line becomes
        `message`, so no "starting…" is left in the cell."""
        bundle: dict[str, Any] = {"text/plain": message}
        if not self.rich_mime:
            bundle["text/markdown"] = _plain_markdown(message)
        self._show(bundle)
        self._handle = None

    # -- internals ----------------------------------------------------------

    def _first_running_tool(self) -> int | None:
        blocks = self.transcript.blocks
        for i in range(self.window.start, len(blocks)):
            if blocks[i].kind == "tool" and not blocks[i].done:
                return i
        return None

    def _show_pending(self, done_call: str | None = None) -> None:
        """Freeze the finished lines, then show the waiting bundles after them.

        `done_call`: the tool call whose result just came. The bundles are its
        outputs; while an earlier call is still running they keep waiting, so no
        line is frozen at "running".
        """
        blocks = self.transcript.blocks
        running = self._first_running_tool()
        if running is not None and done_call is not None:
            done = next(
                (i for i, b in enumerate(blocks) if b.kind == "tool" and b.call_id == done_call),
                None,
            )
            if done is None or done > running:
                return
        self._freeze(len(blocks) if running is None else running)
        self._display_pending()

    def _display_pending(self) -> None:
        rest = self._pending
        if self._handle is not None and not self.window.blocks:
            # The live display holds only a status: the first bundle takes its place,
            # so no empty output is left above the figure.
            self._handle.update(rest[0], raw=True)
            self._handle = None
            rest = rest[1:]
        for bundle in rest:
            self._display(bundle, raw=True)
        self._pending = []

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

    def _starting_bundle(self) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": f"[nbagent: {STARTING}]"}
        if self.rich_mime:
            bundle[TURN_MIME] = {"v": 1, "blocks": [], "status": STARTING}
        else:
            bundle["text/markdown"] = f"*⏳ nbagent: {STARTING}*"
        return bundle

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


def _plain_markdown(text: str) -> str:
    """`text` shown as it is in Markdown (a code span would change its look)."""
    escaped = "".join("\\" + c if c in "\\`*_{}[]<>#+-.!|" else c for c in text)
    return escaped.replace("\n", "  \n")
