"""The panel's turn, run in a worker thread so the kernel stays responsive.

A click handler runs on the kernel's main thread and no other click is processed
until it returns (notes/kernel-bridge.md), so Send only starts the turn here and
returns; the kernel stays idle and Stop / approval clicks still arrive. For the
length of the turn, the session's main-thread tools are dispatched to the kernel's
loop (`MainThreadCalls`), and their rich outputs go to the turn being shown.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ...errors import NBAgentError, NoPendingTurnError
from ...events import Event
from ...pump import pump
from .main_thread import MainThreadCalls

if TYPE_CHECKING:
    from ..session import KernelSession

log = logging.getLogger("nbagent.jupyter")

THREAD_NAME = "nbagent-panel-turn"
JOIN_SECONDS = 0.02  # how often `wait` on the main thread runs queued tool calls
BUSY_MESSAGE = "The agent is busy with another turn (a %%agent cell?): try again when it ends."

DisplayTarget = Callable[[list[dict[str, Any]]], None]


def one_line(exc: BaseException) -> str:
    """An error for the panel's error line: our own errors as they read, others by type."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return (
        first
        if isinstance(exc, NBAgentError) and first
        else f"{type(exc).__name__}: {first}".rstrip(": ")
    )


class TurnWorker:
    """Runs one turn at a time of `session` in a worker thread.

    `start` takes the turn's events (a callable, so the session's busy check runs
    in the worker), what to do with each event, and what to do when it ends; the
    end callback runs under `lock` before the worker counts as idle, so a caller
    holding `lock` never sees a finished turn still running.
    """

    def __init__(
        self, session: KernelSession, calls: MainThreadCalls, lock: threading.RLock
    ) -> None:
        self.session = session
        self.calls = calls
        self.lock = lock
        self.thread: threading.Thread | None = None
        self.busy = False
        self._stop = threading.Event()
        self._display: DisplayTarget | None = None

    def start(
        self,
        make_events: Callable[[], Iterator[Event]],
        *,
        on_event: Callable[[Event], None],
        on_busy: Callable[[], None],
        on_end: Callable[[str], None],
        display: DisplayTarget | None = None,
    ) -> None:
        """Run the turn in a new thread. `on_end(error)` gets "" or a one-line error;
        `on_busy` runs when another turn (a `%%agent` cell's) holds the agent."""
        self._stop.clear()
        self.busy = True
        self._display = display
        ctx = contextvars.copy_context()  # keeps the kernel's parent header for widget messages
        thread = threading.Thread(
            target=ctx.run,
            args=(self._run, make_events, on_event, on_busy, on_end),
            name=THREAD_NAME,
            daemon=True,
        )
        self.thread = thread
        thread.start()

    def stop(self) -> None:
        """Stop the running turn at the next event; the conversation stays valid."""
        self._stop.set()
        with contextlib.suppress(Exception):
            self.session.agent.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running turn; True if none is running any more.

        On the main thread it also runs the main-thread tool calls the turn is
        waiting for (a kernel cannot run them while a cell waits here).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            thread = self.thread
            if thread is None or not thread.is_alive():
                return True
            if threading.current_thread() is self.calls.thread:
                self.calls.run_pending()
            thread.join(JOIN_SECONDS)
            if deadline is not None and time.monotonic() >= deadline:
                return not thread.is_alive()

    def dispatch(self, fn: Callable[[], Any]) -> Any:
        """Run a main-thread tool of this worker's turn on the kernel's loop and wait.

        Its rich outputs (session.on_display) go to the turn's display target while
        it runs. Calls from any other thread (a %%agent cell's turn) run as they are.
        """
        if threading.current_thread() is not self.thread:
            return fn()
        session, display = self.session, self._display

        def call() -> Any:
            saved = session.on_display
            session.on_display = display
            try:
                return fn()
            finally:
                session.on_display = saved

        return self.calls.run(call)

    def _forward_stop(self) -> None:
        if self._stop.is_set():
            self.session.agent.stop()  # again: a Stop before the loop started was cleared

    def _run_pending_here(self) -> None:
        if threading.current_thread() is self.calls.thread:
            self.calls.run_pending()

    def _run(
        self,
        make_events: Callable[[], Iterator[Event]],
        on_event: Callable[[Event], None],
        on_busy: Callable[[], None],
        on_end: Callable[[str], None],
    ) -> None:
        error = ""
        runner = None
        saved_dispatch = None
        try:
            agent = self.session.agent
            runner = agent.tool_runner
            # Installed before the turn's busy check (the first `next`), so it only
            # acts on calls from this worker: a %%agent cell's tools run untouched.
            saved_dispatch = runner.main_thread_dispatch
            runner.main_thread_dispatch = self.dispatch
            hooks = agent.session.wait_hooks
            hooks.append(self._run_pending_here)  # a reset on the main thread waits for us
            try:
                result = pump(make_events(), on_event, before_event=self._forward_stop)
            finally:
                hooks.remove(self._run_pending_here)
            if result.busy:
                error = BUSY_MESSAGE
                with contextlib.suppress(Exception):
                    on_busy()
            elif isinstance(result.error, NoPendingTurnError):
                error = one_line(result.error)
        except Exception as exc:
            log.exception("chat panel turn failed")
            error = one_line(exc)
        finally:
            if runner is not None and runner.main_thread_dispatch == self.dispatch:
                runner.main_thread_dispatch = saved_dispatch
            with self.lock:
                try:
                    on_end(error)
                except Exception:
                    log.exception("chat panel: ending the turn failed")
                self.busy = False
