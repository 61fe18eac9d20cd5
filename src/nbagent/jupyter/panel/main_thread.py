"""Running a worker thread's calls on the kernel's main thread.

Tools that touch IPython state (`tool.main_thread`: run_python, the variable
tools) must run on the kernel's main thread, but a panel turn runs in a worker.
The worker queues such a call and schedules it on the kernel's event loop (its
`io_loop`), which runs it between messages, since the kernel is idle while the
panel's turn runs; a caller waiting on the main thread itself runs the queue
(see `TurnWorker.wait`). Where no loop runs (terminal IPython, tests) the call
runs where it is.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any

Call = tuple[Callable[[], Any], concurrent.futures.Future[Any]]

POLL_SECONDS = 0.5  # how often a waiting worker checks that the loop is still there


def kernel_loop(shell: Any) -> tuple[asyncio.AbstractEventLoop | None, threading.Thread]:
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


class MainThreadCalls:
    """Calls handed from worker threads to `loop`'s thread, answered through futures."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None, thread: threading.Thread) -> None:
        self.loop = loop
        self.thread = thread
        self._queue: queue.SimpleQueue[Call] = queue.SimpleQueue()

    def run(self, fn: Callable[[], Any]) -> Any:
        """`fn()` on the main thread (or here, with no running loop); its result or error."""
        loop = self.loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return fn()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((fn, future))
        loop.call_soon_threadsafe(self.run_pending)
        while True:
            try:
                return future.result(timeout=POLL_SECONDS)
            except concurrent.futures.TimeoutError:
                if loop.is_closed():
                    raise RuntimeError(
                        "the kernel's event loop closed before the tool ran"
                    ) from None

    def run_pending(self) -> None:
        """Run the queued calls (on the main thread: the loop, or a waiting caller)."""
        while True:
            try:
                fn, future = self._queue.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # incl. KeyboardInterrupt: the turn ends interrupted
                future.set_exception(exc)
