"""Warm the SDK up after `%load_ext nbagent`, while the user writes the next cell.

The first turn of a kernel pays for `import anthropic`, the SDK's HTTP client,
the pydantic schemas of its stream events and nbagent's tools: most of the first
answer's wait. `%load_ext` must stay fast and the next cell must not wait, so this
work runs afterwards on the kernel's own event loop (the main thread), in steps of
a few milliseconds that give the loop back in between, and only while the kernel
is idle: a cell that runs or waits to run pauses it, and it goes on once the kernel
has been idle for a moment (`stepper.IDLE_SECONDS`).

Not in a thread: a module another thread is half-way through importing is visible
to user code (a user's `from anthropic.lib.tools import beta_tool` failed with a
partially-initialised module error), and the agent's first turn had to join it.

How an import is cut into steps: the work runs in a greenlet. Each Python module
it imports goes through a loader wrapper that, once the step's time is used up,
switches back to the event loop right before the module's body runs. Until the
next step, the modules still being imported, and everything under them, are taken
out of `sys.modules` (and their import locks out of importlib's table), so user
code and other threads never meet a half-initialised module: a cell that imports
the SDK meanwhile gets its own complete import, and the warm-up then drops its
half. Other work (schemas) is cut into atomic pieces between the same pauses.

During a step the half-imported modules are visible, as in any import: a thread
that starts importing the same package right then runs alongside it, and the SDK's
circular imports can make one of the two fail with importlib's deadlock error, as
two threads importing it at once can without nbagent. nbagent's own threads never
do: a panel turn finishes the warm-up's turn parts on the kernel's thread first.

Outside a kernel (terminal IPython) nothing is warmed: no event loop runs between
prompts that this could share. Without the `greenlet` package, neither.

    warmup.start(shell)          # from %load_ext, in a kernel
    print(warmup.report(shell))  # what it did

`plan` says what is warmed, `stepper` runs it on the loop, `import_locks` reads
importlib's lock table.
"""

from __future__ import annotations

from typing import Any

from .plan import turn_plan
from .stepper import Warmup

_warmups: dict[int, Warmup] = {}


def start(shell: Any) -> Warmup | None:
    """Schedule the warm-up for `shell`'s kernel (None outside a kernel or without greenlet)."""
    kernel = getattr(shell, "kernel", None)
    if kernel is None or id(shell) in _warmups:
        return _warmups.get(id(shell))
    loop = getattr(kernel, "io_loop", None)
    if loop is None:  # loaded from the kernel's config, before the kernel started its loop
        from tornado.ioloop import IOLoop

        loop = IOLoop.current()
    warmup = _warmups[id(shell)] = Warmup(shell, kernel, loop, turn_plan(shell))
    warmup.start()
    return warmup


def stop(shell: Any) -> None:
    """Stop warming (`%unload_ext`); a half-done import is dropped cleanly."""
    warmup = _warmups.pop(id(shell), None)
    if warmup is not None:
        warmup.stop()


def finish_for_turn(shell: Any) -> None:
    """A turn is about to start on the kernel's main thread: finish what it needs now."""
    warmup = _warmups.get(id(shell))
    if warmup is not None:
        warmup.finish_for_turn()


def current(shell: Any) -> Warmup | None:
    return _warmups.get(id(shell))


def report(shell: Any) -> str:
    warmup = current(shell)
    return "no warm-up in this shell" if warmup is None else warmup.report()
