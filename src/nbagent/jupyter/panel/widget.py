"""`ChatPanel`: the chat widget on the kernel's agent session.

It holds the widgets (history, approval buttons, input, Send / Stop, usage) and
what its buttons do; the turn runs in a `TurnWorker`, each turn is shown by a
`TurnView`, and the turns of `%%agent` cells come in through `SeenMessages`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ...events import Event, Notice, ToolCall, Usage
from ...render.transcript import Transcript
from .. import warmup
from .history import SeenMessages, history_widgets
from .html import approval_html, error_html, usage_html, user_html
from .main_thread import MainThreadCalls, kernel_loop
from .style import css
from .turn_view import TurnView
from .worker import TurnWorker, one_line

if TYPE_CHECKING:
    from ..session import KernelSession

log = logging.getLogger("nbagent.jupyter")

DECISION_LABELS = {"allow": "Allowed once", "always": "Always allowed", "deny": "Denied"}


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
            loop, main_thread = kernel_loop(session.shell)
        else:
            main_thread = threading.current_thread()
        self._lock = threading.RLock()
        self.worker = TurnWorker(session, MainThreadCalls(loop, main_thread), self._lock)
        self._view: TurnView | None = None  # the turn being shown (kept across approvals)
        self._seen = SeenMessages()
        self._build()
        try:
            self._sync_history()
            pending = session.agent.pending_approval  # left by an earlier panel
            if pending is not None:
                self._show_approval(pending)
        except Exception as exc:  # e.g. the session cannot build its agent
            self._show_error(one_line(exc))
        self._update_usage()

    def _build(self) -> None:
        self.history = css(widgets.VBox(), "history")
        self.error_label = css(widgets.HTML(value=""), "error")
        self.error_label.layout.display = "none"
        self.approval_text = css(widgets.HTML(value=""), "approval-text")
        self.allow_button = css(
            widgets.Button(description="Allow once", button_style="success"), "allow"
        )
        self.always_button = css(widgets.Button(description="Always"), "always")
        self.deny_button = css(widgets.Button(description="Deny", button_style="danger"), "deny")
        self.allow_button.on_click(lambda _: self.decide("allow"))
        self.always_button.on_click(lambda _: self.decide("always"))
        self.deny_button.on_click(lambda _: self.decide("deny"))
        buttons = widgets.HBox([self.allow_button, self.always_button, self.deny_button])
        self.approval_box = css(
            widgets.VBox([self.approval_text, css(buttons, "approval-buttons")]), "approval"
        )
        self.approval_box.layout.display = "none"
        self.input = css(
            widgets.Textarea(placeholder="Ask the agent… (click Send)", rows=3),
            "input",
        )
        self.input.layout.width = "100%"
        self.send_button = css(
            widgets.Button(description="Send", button_style="primary", icon="paper-plane"), "send"
        )
        self.stop_button = css(
            widgets.Button(description="Stop", button_style="warning", icon="stop", disabled=True),
            "stop",
        )
        self.send_button.on_click(lambda _: self.send())
        self.stop_button.on_click(lambda _: self.stop())
        self.usage_label = css(widgets.HTML(value=""), "usage")
        controls = css(
            widgets.HBox([self.send_button, self.stop_button, self.usage_label]), "controls"
        )
        super().__init__(
            [self.history, self.approval_box, self.error_label, self.input, controls],
        )
        css(self, "")

    # -- what the buttons call ---------------------------------------------

    def __repr__(self) -> str:
        # ipywidgets shows repr() as the panel's text/plain: where widgets do not
        # render (nbviewer, a terminal), say what it is instead of a widget-tree dump.
        return "nbagent chat panel (an ipywidget: open this notebook in Jupyter to chat)"

    @property
    def running(self) -> bool:
        """A turn is running (Send is disabled)."""
        return self.worker.busy

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
                self._show_error(one_line(exc))
                return
            self._hide_approval()
            user = css(widgets.HTML(value=user_html(prompt)), "user")
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
                self._show_error(one_line(exc))
                return
            self._hide_approval()
            if call is None:
                self._show_error("Nothing is waiting for approval any more.")
                return
            view = self._view
            if view is None or view.box not in self.history.children:
                view = self._new_view()
                self.history.children = (*self.history.children, view.box)
            view.handle(Notice(f"{DECISION_LABELS.get(decision, decision)}: {call.name}"))

            def on_busy() -> None:
                self._show_approval(call)

            self._start(
                lambda: self.session.stream_turn(None, decision=decision, approve=None),
                view,
                on_busy,
            )

    def stop(self) -> None:
        """Stop the running turn at the next event; the conversation stays valid."""
        self.worker.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running turn; True if none is running any more.

        On the panel's own thread it also runs the main-thread tool calls the
        turn is waiting for (a kernel cannot run them while a cell waits here).
        """
        return self.worker.wait(timeout)

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
        broadcast = _broadcaster(self.session.shell)

        def on_event(event: Event) -> None:
            try:
                view.handle(event)
                if isinstance(event, Usage):
                    self._update_usage()
            finally:
                broadcast(event)  # the sidebar gets every event, even one we failed to show

        def on_end(error: str) -> None:
            try:
                if not view.finished and not self._awaiting():
                    view.finish()
            except Exception:
                log.exception("chat panel: finishing the turn view failed")
            self._finish_turn(error)

        self._set_running(True)
        # The SDK imported here, on the kernel's thread, not in the worker's alongside the
        # warm-up: two threads importing one package at once can deadlock on its locks.
        warmup.finish_for_turn(self.session.shell)
        self.worker.start(
            make_events,
            on_event=on_event,
            on_busy=on_busy,
            on_end=on_end,
            display=view.show_bundles,
        )

    def _awaiting(self) -> bool:
        try:
            return self.session.agent.pending_approval is not None
        except Exception:
            return False

    def _finish_turn(self, error: str) -> None:
        """The panel after a turn (called under the panel's lock)."""
        self._mark_seen()
        self._update_usage()
        if error:
            self._show_error(error)
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

    # -- widgets ------------------------------------------------------------

    def _show_error(self, message: str) -> None:
        self.error_label.value = error_html(message)
        self.error_label.layout.display = "" if message else "none"

    def _show_approval(self, call: ToolCall) -> None:
        self.approval_text.value = approval_html(call)
        self.approval_box.layout.display = ""

    def _hide_approval(self) -> None:
        self.approval_box.layout.display = "none"

    def _update_usage(self) -> None:
        try:
            usage = self.session.agent.usage
        except Exception:
            return
        self.usage_label.value = usage_html(usage)

    # -- history ------------------------------------------------------------

    def _sync_history(self) -> None:
        """Show what happened in the conversation since the panel last looked
        (turns of %%agent cells, a reset)."""
        messages = self.session.agent.messages
        if self._seen.is_new_conversation(messages):
            self.history.children = ()
            self._view = None
        items = self._seen.new_items(messages)
        if items:
            new = history_widgets(items, show_thinking=self.show_thinking)
            self.history.children = (*self.history.children, *new)
        self._seen.mark(messages)

    def _mark_seen(self) -> None:
        try:
            self._seen.mark(self.session.agent.messages)
        except Exception:
            log.debug("chat panel: could not read the conversation", exc_info=True)


def _html_values(widget: Any) -> Iterator[str]:
    if isinstance(widget, widgets.HTML):
        yield widget.value
    for child in getattr(widget, "children", ()):
        yield from _html_values(child)


def _broadcaster(shell: Any) -> Callable[[Event], None]:
    """Mirror the panel's events to the JupyterLab sidebar when it is there."""
    try:
        from ...transport.broadcast import broadcaster

        send = broadcaster(shell, source="panel")
    except Exception:
        return lambda event: None

    def safe(event: Event) -> None:
        try:
            send(event)
        except Exception:
            log.debug("broadcast failed", exc_info=True)

    return safe
