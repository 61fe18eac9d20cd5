"""`nbagent.chat()`: a chat panel (ipywidgets) on the kernel's agent session.

The panel drives the same `KernelSession` as the `%%agent` cells, so both see one
conversation. Threading (see notes/kernel-bridge.md): a click handler runs on the
kernel's main thread and no other click is processed until it returns, so Send
only starts the turn in a worker thread and returns; the kernel stays idle and
Stop / approval clicks still arrive. Tools that touch IPython state
(`tool.main_thread`) are handed back to the main thread's event loop for the
duration of a panel turn, and run directly where no loop runs (terminal IPython,
tests).

Each assistant turn is a `Transcript` rendered like the cell output: one live
`HTML` widget shows the newest part and is updated at most every `interval`
seconds; completed parts are frozen into their own widgets once the live part
grows past `window_chars`, so an update re-sends a bounded window.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import contextvars
import html
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

try:
    import ipywidgets as widgets
except ImportError as exc:  # pragma: no cover - ipywidgets is a dependency
    raise ImportError("nbagent.chat() needs ipywidgets: pip install ipywidgets") from exc

from ..errors import AgentBusyError, NBAgentError
from ..events import (
    Event,
    Notice,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
    ToolOutput,
    ToolResultEvent,
    TurnEnd,
    Usage,
)
from ..render.transcript import Block, Transcript
from ..render.window import LiveWindow

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from .session import KernelSession

log = logging.getLogger("nbagent.jupyter")

CSS_PREFIX = "jp-nbagent-panel"
USER_TEXT_LIMIT = 4000
PLAIN_OUTPUT_LIMIT = 5000
ARG_LIMIT = 1500


def chat(shell: InteractiveShell | None = None) -> ChatPanel:
    """A chat panel on this kernel's agent session (the one `%%agent` cells use).

    Display it (it is the cell's value) and talk to the agent there; `%%agent`
    cells continue the same conversation.
    """
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            raise RuntimeError(
                "nbagent.chat() runs in IPython or Jupyter; use nbagent.Agent elsewhere."
            )
    settings = _extension_settings(shell)
    from .session import get_session

    return ChatPanel(get_session(shell, settings))


def _extension_settings(shell: Any) -> Any:
    """The `NBAgent` settings of the loaded extension (loading it if needed), so
    `%config NBAgent...` and the `%%agent` cells apply to the panel's session too."""
    from .settings import NBAgent

    def find() -> Any:
        return next(
            (c for c in getattr(shell, "configurables", []) if isinstance(c, NBAgent)), None
        )

    settings = find()
    manager = getattr(shell, "extension_manager", None)
    if settings is None and manager is not None:
        try:
            manager.load_extension("nbagent")
        except Exception:  # the panel still works on its own session
            log.exception("could not load the nbagent extension")
        settings = find()
    return settings


def _css(widget: Any, name: str) -> Any:
    widget.add_class(f"{CSS_PREFIX}-{name}" if name else CSS_PREFIX)
    return widget


# --------------------------------------------------------------------------- HTML


def _make_markdown() -> Callable[[str], str]:
    try:
        import mistune
    except ImportError:
        return lambda text: f'<pre style="white-space:pre-wrap">{html.escape(text)}</pre>'
    md = mistune.create_markdown(escape=True, plugins=["strikethrough", "table", "url"])

    def render(text: str) -> str:
        try:
            return str(md(text))
        except Exception:  # a parser bug must not lose the text
            return f'<pre style="white-space:pre-wrap">{html.escape(text)}</pre>'

    return render


markdown_to_html = _make_markdown()

_DIM = "color:var(--jp-ui-font-color2,#777)"
_MONO = "font-family:var(--jp-code-font-family,monospace);font-size:0.9em"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def block_html(block: Block, *, show_thinking: bool = True) -> str:
    """One transcript block as HTML: text as Markdown, thinking collapsed, tools compact."""
    kind = block.kind
    if kind in ("text", "thinking") and not block.text.strip():
        return ""
    if kind == "text":
        return f'<div class="{CSS_PREFIX}-text">{markdown_to_html(block.text)}</div>'
    if kind == "thinking":
        if not show_thinking:
            return ""
        label = "💭 thinking" if block.done else "💭 thinking…"
        return (
            f'<details class="{CSS_PREFIX}-thinking" style="{_DIM};opacity:0.75">'
            f"<summary>{label}</summary>{markdown_to_html(block.text)}</details>"
        )
    if kind == "tool":
        if block.is_error:
            mark = '<span style="color:var(--jp-error-color1,#d32f2f)">✗</span>'
        elif block.done:
            mark = '<span style="color:var(--jp-success-color1,#388e3c)">✓</span>'
        else:
            mark = f'<span style="{_DIM}">…</span>'
        summary = (
            f' <span style="{_DIM}">{html.escape(_clip(block.summary, 160))}</span>'
            if block.summary
            else ""
        )
        return (
            f'<div class="{CSS_PREFIX}-tool" style="{_MONO}">⚙ <b>{html.escape(block.name)}</b>'
            f"({html.escape(_clip(block.text, 120))}) {mark}{summary}</div>"
        )
    if kind == "error":
        return (
            f'<div class="{CSS_PREFIX}-error-line" style="color:var(--jp-error-color1,#d32f2f)">'
            f"<b>Error:</b> {html.escape(block.text)}</div>"
        )
    return (
        f'<div class="{CSS_PREFIX}-notice" style="{_DIM}"><i>ℹ️ {html.escape(block.text)}</i></div>'
    )


def blocks_html(
    blocks: list[Block], *, show_thinking: bool = True, status: str = "", footer: str = ""
) -> str:
    parts = [block_html(b, show_thinking=show_thinking) for b in blocks]
    if status:
        parts.append(
            f'<div class="{CSS_PREFIX}-status" style="{_DIM}"><i>⏳ {html.escape(status)}</i></div>'
        )
    if footer:
        parts.append(
            f'<div class="{CSS_PREFIX}-footer" style="{_DIM};font-size:0.8em">{html.escape(footer)}</div>'
        )
    return "\n".join(p for p in parts if p)


def user_html(text: str) -> str:
    return (
        '<div style="background:var(--jp-layout-color2,#f0f0f0);border-radius:4px;'
        'padding:4px 8px;margin:4px 0;white-space:pre-wrap">'
        f"<b>You</b><br>{html.escape(_clip(text, USER_TEXT_LIMIT))}</div>"
    )


def _decode(data: Any) -> bytes | None:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        try:
            return base64.b64decode(data)
        except (binascii.Error, ValueError):
            return None
    return None


def image_widget(data: Any, media_type: str) -> Any:
    raw = _decode(data)
    if raw is None:
        return None
    image = widgets.Image(value=raw, format=media_type.split("/")[-1])
    image.layout.max_width = "100%"
    return _css(image, "image")


def bundle_widget(bundle: dict[str, Any]) -> Any:
    """A widget for one rich output (MIME bundle) of run_python, or None."""
    for mime in ("image/png", "image/jpeg"):
        if mime in bundle:
            widget = image_widget(bundle[mime], mime)
            if widget is not None:
                return widget
    if "text/html" in bundle:
        value = bundle["text/html"]
    elif "image/svg+xml" in bundle:
        value = bundle["image/svg+xml"]
    elif "text/markdown" in bundle:
        value = markdown_to_html(str(bundle["text/markdown"]))
    elif "text/plain" in bundle:
        value = f'<pre style="{_MONO}">{html.escape(_clip(str(bundle["text/plain"]), PLAIN_OUTPUT_LIMIT))}</pre>'
    else:
        return None
    if isinstance(value, list):  # nbformat-style multiline strings
        value = "".join(value)
    return _css(widgets.HTML(value=str(value)), "output")


# --------------------------------------------------------------------------- one turn


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
        self.box = _css(widgets.VBox(), "turn")
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
            self._live = _css(widgets.HTML(value=value), "html")
            self.box.children = (*self.box.children, self._live)
        elif self._live.value != value:
            self._live.value = value


# --------------------------------------------------------------------------- history


def _content_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in (content or []) if isinstance(b, dict)]


def history_widgets(
    items: list[tuple[str, dict[str, Any]]], *, show_thinking: bool = True
) -> list[Any]:
    """Compact widgets for past (role, content block) pairs: user prompts, and each
    assistant run (text, collapsed thinking, tool lines with result summaries)."""
    out: list[Any] = []
    transcript: Transcript | None = None
    calls: dict[str, ToolCall] = {}

    def flush() -> None:
        nonlocal transcript
        if transcript is not None and transcript.blocks:
            for b in transcript.blocks:
                b.done = b.done or b.kind != "tool"
            value = blocks_html(transcript.blocks, show_thinking=show_thinking)
            if value:
                out.append(_css(widgets.HTML(value=value), "past-turn"))
        transcript = None

    def current() -> Transcript:
        nonlocal transcript
        if transcript is None:
            transcript = Transcript(show_thinking=show_thinking)
        return transcript

    for role, block in items:
        kind = block.get("type")
        if role == "user":
            if kind == "tool_result":
                call_id = block.get("tool_use_id", "")
                content = block.get("content", "")
                output = ToolOutput(
                    content if isinstance(content, (str, list)) else str(content),
                    bool(block.get("is_error")),
                )
                output = ToolOutput(output.content, output.is_error, _history_summary(output))
                call = calls.get(call_id) or ToolCall(call_id, "tool", {})
                current().add(ToolResultEvent(call, output))
            elif kind == "text":
                flush()
                out.append(_css(widgets.HTML(value=user_html(block.get("text", ""))), "user"))
            elif kind in ("image", "document"):
                flush()
                out.append(_css(widgets.HTML(value=user_html(f"[{kind}]")), "user"))
        else:
            t = current()
            if t.blocks and t.blocks[-1].kind in ("text", "thinking"):
                t.blocks[-1].done = True  # each content block is its own paragraph
            if kind == "text":
                t.add(TextDelta(block.get("text", "")))
            elif kind == "thinking":
                t.add(ThinkingDelta(block.get("thinking", "")))
            elif kind == "tool_use":
                call = ToolCall(
                    block.get("id", ""), block.get("name", "tool"), dict(block.get("input") or {})
                )
                calls[call.id] = call
                t.add(ToolCallEvent(call))
    flush()
    return out


def _history_summary(output: ToolOutput) -> str:
    """A one-line summary of a past tool result (the live summary is not stored)."""
    lines = [ln for ln in output.text().strip().splitlines() if ln.strip()]
    content = [ln for ln in lines if not _LABEL.match(ln.strip())]
    first = _clip(content[0].strip(), 100) if content else ("error" if output.is_error else "ok")
    extra = f" (+{len(content) - 1} lines)" if len(content) > 1 else ""
    n = len(output.images())
    if n:
        extra += f" [{n} image{'s' if n > 1 else ''}]"
    return first + extra


_LABEL = re.compile(r"^\[[\w ]+( \d+)?\]$")  # run_python's "[stdout]", "[display 2]", "[Out]"


# --------------------------------------------------------------------------- the panel


class ChatPanel(widgets.VBox):
    """Chat with the kernel's agent: history, input, Stop, approvals, usage.

    Methods the buttons call (also usable from code and tests): `send(text)`,
    `stop()`, `decide("allow" | "always" | "deny")`; `wait(timeout)` waits for
    the running turn.
    """

    def __init__(
        self,
        session: KernelSession,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        interval: float | None = None,
        window_chars: int = 2000,
    ) -> None:
        settings = session.settings
        self.session = session
        self.interval = (
            interval if interval is not None else float(getattr(settings, "update_interval", 0.1))
        )
        self.window_chars = window_chars
        self.show_thinking = bool(getattr(settings, "show_thinking", True))
        # Main-thread tools are scheduled on this loop (the kernel's) from the worker.
        if loop is None:
            loop, self._main_thread = _main_loop(session.shell)
        else:
            self._main_thread = threading.current_thread()
        self._loop = loop
        self._turn_display: Callable[[list[dict[str, Any]]], None] | None = None
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._busy = False
        self._stop_flag = threading.Event()
        self._view: TurnView | None = None  # the turn being shown (kept across approvals)
        self._seen_messages: list[dict[str, Any]] | None = None
        self._seen_len = 0
        self._seen_blocks = 0

        self.history = _css(widgets.VBox(), "history")
        self.error_label = _css(widgets.HTML(value=""), "error")
        self.error_label.layout.display = "none"
        self.approval_text = _css(widgets.HTML(value=""), "approval-text")
        self.allow_button = _css(
            widgets.Button(description="Allow once", button_style="success"), "allow"
        )
        self.always_button = _css(widgets.Button(description="Always"), "always")
        self.deny_button = _css(widgets.Button(description="Deny", button_style="danger"), "deny")
        self.allow_button.on_click(lambda _: self.decide("allow"))
        self.always_button.on_click(lambda _: self.decide("always"))
        self.deny_button.on_click(lambda _: self.decide("deny"))
        self.approval_box = _css(
            widgets.VBox(
                [
                    self.approval_text,
                    _css(
                        widgets.HBox([self.allow_button, self.always_button, self.deny_button]),
                        "approval-buttons",
                    ),
                ]
            ),
            "approval",
        )
        self.approval_box.layout.display = "none"
        self.input = _css(
            widgets.Textarea(placeholder="Ask the agent… (click Send)", rows=3),
            "input",
        )
        self.input.layout.width = "100%"
        self.send_button = _css(
            widgets.Button(description="Send", button_style="primary", icon="paper-plane"), "send"
        )
        self.stop_button = _css(
            widgets.Button(description="Stop", button_style="warning", icon="stop", disabled=True),
            "stop",
        )
        self.send_button.on_click(lambda _: self.send())
        self.stop_button.on_click(lambda _: self.stop())
        self.usage_label = _css(widgets.HTML(value=""), "usage")
        controls = _css(
            widgets.HBox([self.send_button, self.stop_button, self.usage_label]), "controls"
        )
        super().__init__(
            [self.history, self.approval_box, self.error_label, self.input, controls],
        )
        _css(self, "")
        try:
            self._sync_history()
            pending = session.agent.pending_approval  # left by an earlier panel
            if pending is not None:
                self._show_approval(pending)
        except Exception as exc:  # e.g. the session cannot build its agent
            self._show_error(_one_line(exc))
        self._update_usage()

    # -- what the buttons call ---------------------------------------------

    @property
    def running(self) -> bool:
        """A turn is running (Send is disabled)."""
        return self._busy

    def _ready_for_turn(self) -> bool:
        """One turn at a time: say so, else clear the last error."""
        if self.running:
            self._show_error("A turn is running: wait for it, or press Stop.")
            return False
        self._show_error("")
        return True

    def send(self, text: str | None = None, buffers: Any = None) -> None:  # type: ignore[override]
        """Send a message (default: the input box) and stream the answer.

        (A dict is a custom widget message, as `Widget.send` takes: passed on.)
        """
        if isinstance(text, dict):
            super().send(text, buffers)
            return
        prompt = self.input.value if text is None else text
        if not prompt.strip():
            return
        with self._lock:
            if not self._ready_for_turn():
                return
            try:
                self._sync_history()
            except Exception as exc:
                self._show_error(_one_line(exc))
                return
            self._hide_approval()
            user = _css(widgets.HTML(value=user_html(prompt)), "user")
            view = self._new_view()
            self.history.children = (*self.history.children, user, view.box)
            typed = self.input.value
            if text is None:
                self.input.value = ""

            def on_busy() -> None:
                self.history.children = tuple(
                    c for c in self.history.children if c not in (user, view.box)
                )
                if text is None and not self.input.value:
                    self.input.value = typed

            self._start(lambda: self.session.stream_turn(prompt, approve=None), view, on_busy)

    def decide(self, decision: str) -> None:
        """Answer the tool call waiting for approval: "allow", "always" or "deny"."""
        with self._lock:
            if not self._ready_for_turn():
                return
            try:
                call = self.session.agent.pending_approval
            except Exception as exc:
                self._show_error(_one_line(exc))
                return
            self._hide_approval()
            if call is None:
                self._show_error("Nothing is waiting for approval any more.")
                return
            view = self._view
            if view is None or view.box not in self.history.children:
                view = self._new_view()
                self.history.children = (*self.history.children, view.box)
            label = {"allow": "Allowed once", "always": "Always allowed", "deny": "Denied"}.get(
                decision, decision
            )
            view.handle(Notice(f"{label}: {call.name}"))

            def on_busy() -> None:
                self._show_approval(call)

            self._start(
                lambda: self.session.stream_turn(None, decision=decision, approve=None),
                view,
                on_busy,
            )

    def stop(self) -> None:
        """Stop the running turn at the next event; the conversation stays valid."""
        self._stop_flag.set()
        with contextlib.suppress(Exception):
            self.session.agent.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running turn; True if none is running any more.

        On the panel's own thread it also runs the main-thread tool calls the
        turn is waiting for (a kernel cannot run them while a cell waits here).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            thread = self._thread
            if thread is None or not thread.is_alive():
                return True
            if threading.current_thread() is self._main_thread:
                self._run_pending()
            thread.join(0.02)
            if deadline is not None and time.monotonic() >= deadline:
                return not thread.is_alive()

    def history_html(self) -> str:
        """The HTML of the conversation as shown (for tests and debugging)."""
        return "\n".join(_html_values(self.history))

    # -- turns --------------------------------------------------------------

    def _new_view(self) -> TurnView:
        view = TurnView(
            Transcript(show_thinking=self.show_thinking),
            interval=self.interval,
            window_chars=self.window_chars,
        )
        self._view = view
        return view

    def _start(
        self,
        make_events: Callable[[], Iterator[Event]],
        view: TurnView,
        on_busy: Callable[[], None],
    ) -> None:
        self._stop_flag.clear()
        self._busy = True
        self._set_running(True)
        ctx = contextvars.copy_context()  # keeps the kernel's parent header for widget messages
        thread = threading.Thread(
            target=ctx.run,
            args=(self._run_turn, make_events, view, on_busy),
            name="nbagent-panel-turn",
            daemon=True,
        )
        self._thread = thread
        thread.start()

    def _run_turn(
        self,
        make_events: Callable[[], Iterator[Event]],
        view: TurnView,
        on_busy: Callable[[], None],
    ) -> None:
        session = self.session
        error = ""
        runner = None
        saved_dispatch = None
        self._turn_display = view.show_bundles
        try:
            agent = session.agent
            runner = agent.tool_runner
            # Installed before the turn's busy check (the first `next`), so it only
            # acts on calls from this worker: a %%agent cell's tools run untouched.
            saved_dispatch = runner.main_thread_dispatch
            runner.main_thread_dispatch = self._dispatch
            broadcast = _broadcaster(session.shell)
            events = make_events()
            with contextlib.closing(events):  # type: ignore[type-var]
                for event in events:
                    if self._stop_flag.is_set():
                        agent.stop()  # again: a Stop before the loop started was cleared
                    try:
                        view.handle(event)
                        if isinstance(event, Usage):
                            self._update_usage()
                    except Exception:  # keep consuming: the loop keeps the history valid
                        log.exception("the chat panel failed to show an event")
                    broadcast(event)
        except AgentBusyError:
            error = "The agent is busy with another turn (a %%agent cell?): try again when it ends."
            with contextlib.suppress(Exception):
                on_busy()
        except NBAgentError as exc:
            error = _one_line(exc)
        except Exception as exc:
            log.exception("chat panel turn failed")
            error = _one_line(exc)
        finally:
            if runner is not None and runner.main_thread_dispatch == self._dispatch:
                runner.main_thread_dispatch = saved_dispatch
            try:
                if not view.finished and not self._awaiting():
                    view.finish()
            except Exception:
                log.exception("chat panel: finishing the turn view failed")
            self._finish_turn(error)

    def _awaiting(self) -> bool:
        try:
            return self.session.agent.pending_approval is not None
        except Exception:
            return False

    def _finish_turn(self, error: str) -> None:
        with self._lock:
            self._mark_seen()
            self._update_usage()
            if error:
                self._show_error(error)
            self._busy = False
            self._set_running(False)
            call = None
            with contextlib.suppress(Exception):
                call = self.session.agent.pending_approval
            if call is not None:
                self._show_approval(call)
            else:
                self._hide_approval()

    def _set_running(self, running: bool) -> None:
        self.send_button.disabled = running
        self.stop_button.disabled = not running

    # -- main-thread tools --------------------------------------------------

    def _dispatch(self, fn: Callable[[], Any]) -> Any:
        """Run a main-thread tool of the panel's turn on the kernel's event loop and wait.

        Its rich outputs (session.on_display) go to the panel's turn while it runs.
        Calls from any other thread (a %%agent cell's turn) run as they are.
        """
        if threading.current_thread() is not self._thread:
            return fn()
        session, display = self.session, self._turn_display

        def call() -> Any:
            saved = session.on_display
            session.on_display = display
            try:
                return fn()
            finally:
                session.on_display = saved

        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return call()  # terminal IPython, tests: no loop to hand it to
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._calls.put((call, future))
        loop.call_soon_threadsafe(self._run_pending)
        while True:
            try:
                return future.result(timeout=0.5)
            except concurrent.futures.TimeoutError:
                if loop.is_closed():
                    raise RuntimeError(
                        "the kernel's event loop closed before the tool ran"
                    ) from None

    def _run_pending(self) -> None:
        while True:
            try:
                fn, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # incl. KeyboardInterrupt: the turn ends interrupted
                future.set_exception(exc)

    # -- widgets ------------------------------------------------------------

    def _show_error(self, message: str) -> None:
        self.error_label.value = (
            f'<span style="color:var(--jp-error-color1,#d32f2f)">⚠ {html.escape(message)}</span>'
            if message
            else ""
        )
        self.error_label.layout.display = "" if message else "none"

    def _show_approval(self, call: ToolCall) -> None:
        self.approval_text.value = _approval_html(call)
        self.approval_box.layout.display = ""

    def _hide_approval(self) -> None:
        self.approval_box.layout.display = "none"

    def _update_usage(self) -> None:
        try:
            u = self.session.agent.usage
        except Exception:
            return
        tokens_in = u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens
        self.usage_label.value = (
            f'<span style="{_DIM};font-size:0.9em">{tokens_in:,} in · {u.output_tokens:,} out · '
            f"${u.cost_usd:.4f}</span>"
        )

    # -- history ------------------------------------------------------------

    def _sync_history(self) -> None:
        """Show what happened in the conversation since the panel last looked
        (turns of %%agent cells, a reset)."""
        messages = self.session.agent.messages
        if messages is not self._seen_messages or len(messages) < self._seen_len:
            self.history.children = ()
            self._view = None
            self._seen_messages, self._seen_len, self._seen_blocks = messages, 0, 0
        items: list[tuple[str, dict[str, Any]]] = []
        if self._seen_len:
            last = messages[self._seen_len - 1]
            items += [(last["role"], b) for b in _content_blocks(last)[self._seen_blocks :]]
        for message in messages[self._seen_len :]:
            items += [(message["role"], b) for b in _content_blocks(message)]
        if items:
            new = history_widgets(items, show_thinking=self.show_thinking)
            self.history.children = (*self.history.children, *new)
        self._mark_seen()

    def _mark_seen(self) -> None:
        with contextlib.suppress(Exception):
            messages = self.session.agent.messages
            self._seen_messages = messages
            self._seen_len = len(messages)
            self._seen_blocks = len(_content_blocks(messages[-1])) if messages else 0


def _approval_html(call: ToolCall) -> str:
    rows = []
    for key, value in call.input.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)
        text = _clip(text, ARG_LIMIT)
        if "\n" in text or len(text) > 80:
            rows.append(
                f'<div>{html.escape(key)}:</div><pre style="{_MONO};white-space:pre-wrap;margin:2px 0 4px 1em">'
                f"{html.escape(text)}</pre>"
            )
        else:
            rows.append(f'<div style="{_MONO}">{html.escape(key)} = {html.escape(text)}</div>')
    return f"<div><b>Allow {html.escape(call.name)}?</b></div>" + "".join(rows)


def _html_values(widget: Any) -> Iterator[str]:
    if isinstance(widget, widgets.HTML):
        yield widget.value
    for child in getattr(widget, "children", ()):
        yield from _html_values(child)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return (
        first
        if isinstance(exc, NBAgentError) and first
        else f"{type(exc).__name__}: {first}".rstrip(": ")
    )


def _main_loop(shell: Any) -> tuple[asyncio.AbstractEventLoop | None, threading.Thread]:
    """The kernel's main event loop (its io_loop) and the thread it runs on."""
    kernel = getattr(shell, "kernel", None)
    io_loop = getattr(kernel, "io_loop", None) if kernel is not None else None
    loop = getattr(io_loop, "asyncio_loop", None)
    if isinstance(loop, asyncio.AbstractEventLoop):
        return loop, threading.main_thread()
    try:
        return asyncio.get_running_loop(), threading.current_thread()
    except RuntimeError:
        return None, threading.current_thread()


def _broadcaster(shell: Any) -> Callable[[Event], None]:
    """Mirror the panel's events to the JupyterLab sidebar when it is there."""
    try:
        from ..transport.broadcast import broadcaster

        send = broadcaster(shell, source="panel")
    except Exception:
        return lambda event: None

    def safe(event: Event) -> None:
        try:
            send(event)
        except Exception:
            log.debug("broadcast failed", exc_info=True)

    return safe
