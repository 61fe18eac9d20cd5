"""Warm the SDK up after `%load_ext nbagent`, while the user writes the next cell.

The first turn of a kernel pays for `import anthropic`, the SDK's HTTP client,
the pydantic schemas of its stream events and nbagent's tools: most of the first
answer's wait. `%load_ext` must stay fast and the next cell must not wait, so this
work runs afterwards on the kernel's own event loop (the main thread), in steps of
a few milliseconds that give the loop back in between, and only while the kernel
is idle: a cell that runs or waits to run pauses it, and it goes on once the kernel
has been idle for `IDLE_SECONDS`.

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

Outside a kernel (terminal IPython) nothing is warmed: no event loop runs between
prompts that this could share. Without the `greenlet` package, neither.

    warmup.start(shell)          # from %load_ext, in a kernel
    print(warmup.report(shell))  # what it did
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import io
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger("nbagent.warmup")

STEP_SECONDS = 0.012  # work per step before the event loop gets control back
IDLE_SECONDS = 0.1  # how long the kernel must have been idle before a step after a cell
# The first step: soon after `%load_ext`'s cell has replied (no cell waits to run then,
# or the warm-up sees it waiting); the idle wait would only delay the warm-up.
FIRST_STEP_SECONDS = 0.01

# nbagent's modules a first %%agent turn imports, in steps before the agent is built
# (in one piece, which imports whatever is missing here); the rest of the package (but
# for SKIP) comes last. tests/test_first_turn.py checks that a first turn after the
# warm-up imports nothing.
TURN_MODULES = (
    "nbagent.agent",
    "nbagent.pump",
    "nbagent.request",
    "nbagent.providers.registry",
    "nbagent.providers.anthropic_api",
    "nbagent.context.client_compaction",
    "nbagent.context.server_compaction",
    "nbagent.tools.builtin",
    "nbagent.jupyter.live",
    "nbagent.jupyter.session",
    "nbagent.jupyter.conversation",
    "nbagent.jupyter.interpolate",
    "nbagent.jupyter.cell_output",
    "nbagent.transport.broadcast",
    "docstring_parser",
)
# What a %%agent turn never needs, and imports heavy libraries (ipywidgets, rich).
SKIP = ("nbagent.cli", "nbagent.jupyter.panel")

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


# -- what is warmed -------------------------------------------------------------


class Unit:
    """One piece of the plan: import a module (paused between modules), or run
    `work(pause)`, which calls `pause()` between atomic pieces. (Plain classes, not
    dataclasses: this module is imported by `%load_ext`, which must stay fast.)"""

    __slots__ = ("modules", "module", "name", "optional", "turn", "work")

    def __init__(
        self,
        name: str,
        module: str | None = None,
        work: Callable[[Callable[[], None]], None] | None = None,
        optional: bool = False,
        modules: Callable[[], list[str]] | None = None,
        turn: bool = True,
    ) -> None:
        self.name = name
        self.turn = turn  # a first turn needs it: done in the turn if not done before
        self.module = module
        self.work = work
        self.optional = optional  # a module that may not be installed
        self.modules = modules  # more modules to import, listed when this runs


def turn_plan(shell: Any) -> list[Unit]:
    """What a first `%%agent` turn pays for. Whatever is not done when the first cell
    runs is paid there, so what every turn needs comes first, and the stream schemas
    of the API a turn may not use (the beta client serves the newer models) last."""
    return [
        Unit("import anthropic", module="anthropic"),
        # The HTTP library's connection layer, imported when the first client is made.
        Unit("import httpcore2", module="httpcore2", optional=True),
        Unit("import httpcore", module="httpcore", optional=True),
        *[Unit(f"import {name}", module=name) for name in TURN_MODULES],
        Unit("agent, tool schemas, client", work=lambda pause: _agent_and_tools(shell, pause)),
        Unit("beta stream schemas", work=lambda pause: _stream_schemas(pause, beta=True)),
        Unit("beta stream parsing", work=lambda pause: _stream_parsing(pause, beta=True)),
        Unit("stream schemas", work=lambda pause: _stream_schemas(pause, beta=False)),
        Unit("stream parsing", work=lambda pause: _stream_parsing(pause, beta=False)),
        Unit(
            "nbagent's other modules",
            modules=lambda: package_modules("nbagent", SKIP),
            turn=False,
        ),
    ]


def package_modules(package: str, skip: tuple[str, ...] = ()) -> list[str]:
    """The modules of `package` (imported) found on disk, but for `skip` and its children."""
    from pathlib import Path

    names = []
    for folder in getattr(sys.modules[package], "__path__", []):
        root = Path(folder)
        for path in sorted(root.rglob("*.py")):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__main__" or not all(
                (root.joinpath(*parts[1:i]) / "__init__.py").exists() for i in range(2, len(parts))
            ):
                continue
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(parts)
            if not any(name == s or name.startswith(s + ".") for s in skip):
                names.append(name)
    return names


def _stream_schemas(pause: Callable[[], None], *, beta: bool) -> None:
    """Build the SDK's deferred pydantic schemas of the stream events, leaves first,
    one model per piece (a built model's schema is reused by the ones using it)."""
    for model in _stream_models(beta):
        if not model.__pydantic_complete__:
            model.model_rebuild(raise_errors=False, _parent_namespace_depth=0)
        pause()


def _stream_models(beta: bool) -> list[Any]:
    import typing

    import pydantic

    roots: list[Any] = []
    for module, names in (
        (
            ("anthropic.types.beta", ("BetaRawMessageStreamEvent", "BetaMessage")),
            ("anthropic.lib.streaming", ("BetaMessageStreamEvent",)),
        )
        if beta
        else (
            ("anthropic.types", ("RawMessageStreamEvent", "Message")),
            ("anthropic.lib.streaming", ("MessageStreamEvent",)),
        )
    ):
        found = sys.modules.get(module)
        roots += [getattr(found, name) for name in names if hasattr(found, name)]
    seen: set[type] = set()
    order: list[Any] = []

    def visit(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
            if tp in seen:
                return
            seen.add(tp)
            for info in tp.model_fields.values():
                visit(info.annotation)
            order.append(tp)  # after the models it uses
            return
        for arg in typing.get_args(tp):
            visit(arg)

    for root in roots:
        visit(root)
    return order


def _stream_parsing(pause: Callable[[], None], *, beta: bool) -> None:
    """Stream a canned response through the SDK's own client and accumulator (a mock
    transport, nothing leaves the process): the first real stream finds its type
    adapters and request building ready."""
    import anthropic

    try:  # the SDK's HTTP library (httpx before SDK 2)
        http_lib: Any = importlib.import_module("httpx2")
    except ImportError:
        http_lib = importlib.import_module("httpx")
    body = _canned_stream()

    def respond(request: Any) -> Any:
        return http_lib.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    http = http_lib.Client(transport=http_lib.MockTransport(respond))
    client = anthropic.Anthropic(
        api_key="nbagent-warm-up",
        base_url="http://warm-up.invalid",
        max_retries=0,
        http_client=http,
    )
    request: dict[str, Any] = {
        "model": "claude-warm-up",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "warm up"}],
        "tools": [{"name": "t", "description": "t", "input_schema": {"type": "object"}}],
    }
    messages: Any = client.beta.messages if beta else client.messages
    try:
        with messages.stream(**request) as stream:
            for _ in stream:
                pass
            stream.get_final_message()
    finally:
        client.close()


def _canned_stream() -> bytes:
    import json

    usage = {"input_tokens": 1, "output_tokens": 1}
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_warm_up",
                "type": "message",
                "role": "assistant",
                "model": "claude-warm-up",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage,
            },
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "."},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "s"},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "."}},
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_warm_up", "name": "t", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    ]
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def _agent_and_tools(shell: Any, pause: Callable[[], None]) -> None:
    """The kernel session's agent (settings, workspace, tools) in one piece, each tool's
    schema and input validator, then the provider's client for the current settings
    (the first turn reuses it while they hold): what the first request needs."""
    if id(shell) not in _warmups:  # unloaded meanwhile
        return
    from .session import get_session

    agent = get_session(shell).agent
    pause()
    for tool in agent.tools:
        tool.to_param()
        pause()
        getattr(tool, "_validated", None)
        pause()
    getattr(agent.provider, "client", None)


# -- running it on the kernel's loop ----------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.loaded_at = time.monotonic()
        self.finished_at: float | None = None
        self.steps = 0
        self.started_after = 0.0  # seconds from loading to the first step
        self.work_seconds = 0.0
        self.longest_step = 0.0
        self.longest_in = ""  # the part the longest step was in
        self.waits = 0  # times a step was put off because a cell ran or waited
        self.dropped = 0  # half-done imports dropped: another thread imported the same
        self.finished_for_cells = 0  # half-done imports a cell needed, finished in it
        self.for_turn_seconds = 0.0  # parts a first turn needed, done in it
        self.failed: list[str] = []
        self.timeline: list[tuple[str, float, float]] = []  # part, wall and work when done
        self.turn_ready: tuple[str, float, float] | None = None  # the last part a turn needs


class _Abandon(BaseException):
    """Thrown into the greenlet to unwind a half-done import."""


class Warmup:
    """Runs `units` in a greenlet, a step at a time, on `loop`, while `kernel` is idle."""

    def __init__(self, shell: Any, kernel: Any, loop: Any, units: list[Unit]) -> None:
        self.shell = shell
        self.kernel = kernel
        self.loop = loop
        self.units = units
        self.next_unit = 0
        self.state = "waiting"  # waiting | warming | done | stopped
        self.stats = Stats()
        self._executing = False
        self._last_activity = time.monotonic()
        self._cells_since_load = False  # a cell ran or waited after the loading one
        self._timer: Any = None
        self._glet: Any = None
        self._deadline = 0.0
        self._importing = False
        self._abandoning = False
        self._finishing = False  # finishing the current import for a cell that needs it
        self._finish_until: int | None = None  # finishing the parts a first turn needs
        self._thread = threading.get_ident()
        self._stack: list[str] = []  # modules whose body is running in the greenlet
        # Imported by the current unit (recorded by the loader wrapper, not by comparing
        # sys.modules at every step: that cost a millisecond a step).
        self._unit_modules: set[str] = set()
        self._unit_start: set[str] = set()  # sys.modules when the current unit began
        self._hidden: dict[str, Any] = {}  # half-imported modules taken out between steps
        self._hidden_locks: dict[str, Any] = {}
        self._finder = _PausingFinder(self)
        self._greenlet: Any = None  # the greenlet module, imported at the first step

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        events = self.shell.events
        events.register("pre_execute", self._cell_starts)
        events.register("post_execute", self._cell_ends)
        self._schedule(FIRST_STEP_SECONDS)

    def stop(self) -> None:
        if self.state in ("done", "stopped"):
            return
        self._end("stopped")

    @property
    def suspended_in_import(self) -> bool:
        """A step ended in the middle of an import (its modules are hidden)."""
        return bool(self._hidden)

    def report(self) -> str:
        s = self.stats
        wall = (s.finished_at or time.monotonic()) - s.loaded_at
        done = [u.name for u in self.units[: self.next_unit]]
        text = (
            f"{self.state} after {wall:.2f} s: {s.work_seconds * 1000:.0f} ms of work in "
            f"{s.steps} steps from {s.started_after:.2f} s "
            f"(longest {s.longest_step * 1000:.0f} ms, {s.longest_in}), "
            f"{len(done)}/{len(self.units)} parts; put off {s.waits} times for cells"
        )
        if s.turn_ready is not None:
            text += f"; ready for a turn after {s.turn_ready[1]:.2f} s"
        if s.finished_for_cells:
            text += f"; {s.finished_for_cells} imports finished for the cell that needed them"
        if s.for_turn_seconds:
            text += f"; {s.for_turn_seconds * 1000:.0f} ms of it finished in the first turn"
        if s.dropped:
            text += f"; {s.dropped} half-done imports dropped"
        if s.failed:
            text += f"; failed: {', '.join(s.failed)}"
        return text

    # -- when to step ----------------------------------------------------------------

    def _cell_starts(self) -> None:
        self._executing = True
        self._cells_since_load = True
        self._last_activity = time.monotonic()

    def _cell_ends(self) -> None:
        self._executing = False
        self._last_activity = time.monotonic()

    def _idle(self) -> bool:
        if self._executing or _cell_waiting(self.kernel):
            self._last_activity = time.monotonic()
            self._cells_since_load = True
            return False
        if not self._cells_since_load:  # only `%load_ext`'s own cell has run
            return True
        return time.monotonic() - self._last_activity >= IDLE_SECONDS

    def _schedule(self, delay: float) -> None:
        self._timer = self.loop.call_later(delay, self._tick)

    def _hop(self) -> None:
        # Two hops: a shell message read in between starts its cell before the next step.
        self.loop.add_callback(lambda: self._schedule(0))

    def _tick(self) -> None:
        self._timer = None
        if self.state in ("done", "stopped"):
            return
        if not self._idle():
            self.stats.waits += self.state == "warming"
            self._schedule(IDLE_SECONDS / 2)
            return
        if self.state == "waiting":
            self.stats.started_after = time.monotonic() - self.stats.loaded_at
        self.state = "warming"
        try:
            finished = self._step()
        except BaseException as exc:  # an interrupt while idle, or a bug here
            log.debug("nbagent warm-up stopped: %r", exc)
            self._end("stopped")
            return
        if finished:
            self._end("done")
        elif self.state == "warming":
            self._hop()

    # -- one step ----------------------------------------------------------------------

    def _step(self) -> bool:
        """Run the greenlet for about STEP_SECONDS; True when the plan is done."""
        if self._greenlet is None:
            try:
                self._greenlet = importlib.import_module("greenlet")
            except ImportError:
                self.stats.failed.append("greenlet is not installed")
                return True
        if self._hidden and not self._unhide():
            self._drop_half_import()
        if sys.meta_path[0] is not self._finder:  # a finder added since goes after it
            if self._finder in sys.meta_path:
                sys.meta_path.remove(self._finder)
            sys.meta_path.insert(0, self._finder)
        started = time.perf_counter()
        self._deadline = started + STEP_SECONDS
        if self._glet is None:
            self._glet = self._greenlet.greenlet(self._work)
        out, err = io.StringIO(), io.StringIO()
        try:
            # Nothing the imports print may land in the output of the last cell.
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                self._glet.switch()
                # A thread that met a half-imported module waits for its import lock:
                # go on until that import is done, or a cell joining the thread would
                # wait for a warm-up that waits for the cell.
                while (
                    not self._glet.dead
                    and self._stack
                    and _threads_waiting(_locks_held_by(self._thread))
                ):
                    self._deadline = time.perf_counter() + STEP_SECONDS
                    self._glet.switch()
        except BaseException:
            self._glet = None
            self._drop_orphans(self._unit_modules | (set(sys.modules) - self._unit_start))
            raise
        finally:
            elapsed = time.perf_counter() - started
            self.stats.steps += 1
            self.stats.work_seconds += elapsed
            if elapsed > self.stats.longest_step:
                self.stats.longest_step = elapsed
                self.stats.longest_in = self.units[min(self.next_unit, len(self.units) - 1)].name
            if out.getvalue() or err.getvalue():
                log.debug("nbagent warm-up output: %r %r", out.getvalue(), err.getvalue())
        if self._glet.dead:
            self._glet = None
            return True
        self._hide()
        return False

    def _work(self) -> None:
        """The greenlet: every unit from `next_unit` on."""
        while self.next_unit < len(self.units):
            unit = self.units[self.next_unit]
            self._unit_modules = set()
            self._unit_start = unit_start = set(sys.modules)
            try:
                if unit.module is not None:
                    self._import(unit.module, unit.optional)
                elif unit.work is not None:
                    unit.work(self.pause)
                elif unit.modules is not None:
                    more = [Unit(f"import {m}", module=m, turn=False) for m in unit.modules()]
                    at = self.next_unit + 1
                    self.units[at:at] = [u for u in more if u.module not in sys.modules]
            except Exception as exc:
                log.debug("nbagent warm-up: %s failed: %r", unit.name, exc)
                self.stats.failed.append(f"{unit.name} ({type(exc).__name__}: {exc})")
                self._drop_orphans(set(sys.modules) - unit_start)
            self.next_unit += 1
            done = (unit.name, time.monotonic() - self.stats.loaded_at, self.stats.work_seconds)
            self.stats.timeline.append(done)
            if unit.turn and (
                self.next_unit == len(self.units) or not self.units[self.next_unit].turn
            ):
                self.stats.turn_ready = done
            self.pause()

    def _import(self, name: str, optional: bool) -> None:
        if name in sys.modules:
            return
        if optional:
            if importlib.util.find_spec(name) is None:
                return
        self._importing = True
        try:
            importlib.import_module(name)
        finally:
            self._importing = False

    def pause(self) -> None:
        """Give the event loop back if this step's time is used up (in the greenlet).
        When a cell needs the import under way, go on to the end of it instead; when a
        turn needs the parts before `_finish_until`, go on to the end of those."""
        if self._abandoning or (self._finishing and self._importing):
            return
        if self._finish_until is not None:
            if self.next_unit >= self._finish_until:
                self._glet.parent.switch()
            return
        if self._finishing or time.perf_counter() >= self._deadline:
            self._glet.parent.switch()

    def finish_for_turn(self) -> None:
        """A first turn starts while the warm-up is under way: do the parts a turn needs
        now, in one go. Cheaper than leaving them to the turn: the warm-up builds the
        stream schemas leaves first, which the SDK's lazy path does about twice as slowly."""
        if self.state not in ("waiting", "warming") or threading.get_ident() != self._thread:
            return
        until = next((i for i, u in enumerate(self.units) if not u.turn), len(self.units))
        if self.next_unit >= until:
            return
        if self._greenlet is None:
            try:
                self._greenlet = importlib.import_module("greenlet")
            except ImportError:
                return
        if self._hidden and not self._unhide(importer=self._thread):
            self._drop_half_import()
        started = time.perf_counter()
        self._finish_until = until
        if self._glet is None:
            self._glet = self._greenlet.greenlet(self._work)
        try:
            self._glet.switch()
        except BaseException:
            self._glet = None
            self._drop_orphans(self._unit_modules)
            raise
        finally:
            self._finish_until = None
            self.stats.for_turn_seconds += time.perf_counter() - started
        if self._glet.dead:
            self._glet = None
            self._end("done")

    def finish_import_for(self, name: str) -> Any:
        """User code on the main thread imports `name`, which the warm-up is half-way
        through: finish that import now, in the user's import, and hand over the module
        (the cell waits only for what was left). None: let the import run as usual."""
        if self._glet is None or threading.get_ident() != self._thread:
            return None
        if not self._unhide(importer=self._thread):
            return None
        self._finishing = True
        self._deadline = math.inf
        import _imp

        # importlib calls finders with its global lock held: let other threads import
        # meanwhile, as they could during the import this one replaces.
        try:
            _imp.release_lock()
            released = True
        except RuntimeError:  # called from outside importlib, without its lock
            released = False
        try:
            self._glet.switch()
        except BaseException:
            self._glet = None
            self._drop_orphans(self._unit_modules)
            raise
        finally:
            if released:
                _imp.acquire_lock()
            self._finishing = False
        if self._glet.dead:
            self._glet = None
        self._hide()
        self.stats.finished_for_cells += 1
        module = sys.modules.get(name)
        return None if module is None else _existing_spec(module)

    # -- half-done imports between steps ---------------------------------------------

    def _hide(self) -> None:
        """Take the modules still being imported, and those under them, out of sys.modules."""
        if not self._stack:
            return
        running = set(self._stack)
        under = tuple(name + "." for name in self._stack)
        names = [n for n in self._unit_modules if n in running or n.startswith(under)]
        locks = _module_locks()
        with _import_lock():
            for name in names:
                found = sys.modules.pop(name, None)
                if found is not None:
                    self._hidden[name] = found
            # Every import lock this thread holds now is the greenlet's (a step runs from
            # the event loop, outside any import): with those of the modules above, the
            # locks of modules not created yet (`from .pkg.mod import x` holds mod's lock
            # while pkg runs). Left in the table, another thread would wait on them.
            for name in {*names, *_locks_held_by(self._thread)}:
                if locks is not None and name in locks:
                    self._hidden_locks[name] = locks.pop(name)

    def _unhide(self, importer: int | None = None) -> bool:
        """Put the hidden modules back; False if user code imported any of them meanwhile,
        or is importing one of them now on a thread other than `importer`."""
        locks = _module_locks()
        with _import_lock():
            if any(name in sys.modules for name in self._hidden):
                return False
            if locks is not None and any(
                _held_by_other(locks.get(name), importer) for name in self._hidden_locks
            ):
                return False
            sys.modules.update(self._hidden)
            if locks is not None:
                locks.update(self._hidden_locks)
            self._hidden.clear()
            self._hidden_locks.clear()
        return True

    def _drop_half_import(self) -> None:
        """User code imported what the greenlet was half-way through: unwind the greenlet's
        import with its own modules in place, then give the user's back."""
        self.stats.dropped += 1
        locks = _module_locks()
        with _import_lock():
            theirs = {n: sys.modules[n] for n in self._hidden if n in sys.modules}
            their_locks = (
                {n: locks[n] for n in self._hidden_locks if n in locks} if locks is not None else {}
            )
            ours = dict(self._hidden)
            sys.modules.update(ours)
            if locks is not None:
                locks.update(self._hidden_locks)
        self._hidden.clear()
        self._hidden_locks.clear()
        self._abandoning = True
        try:
            if self._glet is not None and not self._glet.dead:
                self._glet.throw(_Abandon())
        except _Abandon:
            pass
        finally:
            self._abandoning = False
            self._glet = None
            self._stack.clear()
            with _import_lock():
                for name, module in ours.items():
                    if sys.modules.get(name) is module:
                        del sys.modules[name]
                sys.modules.update(theirs)
                if locks is not None:
                    locks.update(their_locks)

    def _drop_orphans(self, names: set[str]) -> None:
        """After a failed import: drop modules whose package is gone, as a fresh import
        of the package would otherwise reuse them without binding them to it."""
        for name in sorted(names, key=len):
            parent = name.rpartition(".")[0]
            while parent:
                if parent not in sys.modules:
                    sys.modules.pop(name, None)
                    break
                parent = parent.rpartition(".")[0]

    def _end(self, state: str) -> None:
        self.state = state
        if self._timer is not None:
            self.loop.remove_timeout(self._timer)
            self._timer = None
        if self._hidden:
            self._drop_half_import()
        elif self._glet is not None and not self._glet.dead:
            self._abandoning = True
            try:
                self._glet.throw(_Abandon())
            except _Abandon:
                pass
            self._abandoning = False
        self._glet = None
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        events = self.shell.events
        for name, callback in (
            ("pre_execute", self._cell_starts),
            ("post_execute", self._cell_ends),
        ):
            with contextlib.suppress(ValueError):
                events.unregister(name, callback)
        self.stats.finished_at = time.monotonic()


class _PausingFinder:
    """First on sys.meta_path while warming: gives the greenlet's imports a loader
    that pauses before a module's body once the step's time is used up."""

    def __init__(self, warmup: Warmup) -> None:
        self.warmup = warmup

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        warmup = self.warmup
        if warmup._glet is None:
            return None
        if warmup._greenlet.getcurrent() is not warmup._glet:
            if name in warmup._hidden:
                return warmup.finish_import_for(name)
            return None
        if not warmup._importing:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PausingLoader(spec.loader, spec, warmup)
        return spec


class _PausingLoader:
    def __init__(self, loader: Any, spec: Any, warmup: Warmup) -> None:
        self.loader = loader
        self.spec = spec
        self.warmup = warmup

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        # The module sees its real loader (importlib.resources, inspect, pickle).
        self.spec.loader = self.loader
        module.__loader__ = self.loader
        warmup = self.warmup
        warmup._unit_modules.add(self.spec.name)
        warmup._stack.append(self.spec.name)
        try:
            if isinstance(
                self.loader,
                importlib.machinery.SourceFileLoader | importlib.machinery.SourcelessFileLoader,
            ):
                warmup.pause()
            self.loader.exec_module(module)
        finally:
            warmup._stack.pop()


class _Imported:
    """Loader of a module that is already imported: the importer gets that module."""

    def __init__(self, module: Any, spec: Any, loader: Any) -> None:
        self.module = module
        self.spec = spec
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.module

    def exec_module(self, module: Any) -> None:
        self.spec.loader = self.loader


def _existing_spec(module: Any) -> Any:
    """`module`'s own spec, with a loader that gives back `module` itself: returned from
    find_spec, importlib's load then puts the same module in place, nothing runs twice."""
    spec = getattr(module, "__spec__", None)
    if spec is None:
        return None
    spec.loader = _Imported(module, spec, spec.loader)
    return spec


def _cell_waiting(kernel: Any) -> bool:
    """A shell message is being handled or waits (ipykernel 7: the main shell's lock;
    ipykernel 6: its message queue). Unknown kernels: only IPython's own events count."""
    lock = getattr(kernel, "_main_asyncio_lock", None)
    if lock is not None and (lock.locked() or getattr(lock, "_waiters", None)):
        return True
    queue = getattr(kernel, "msg_queue", None)
    try:
        return bool(queue is not None and queue.qsize())
    except Exception:
        return False


def _threads_waiting(names: list[str]) -> bool:
    """Another thread waits for the import lock of one of `names`."""
    locks = _module_locks()
    if locks is None:
        return False
    for name in names:
        ref = locks.get(name)
        lock = ref() if ref is not None else None
        if lock is not None and bool(getattr(lock, "waiters", None)):
            return True
    return False


def _locks_held_by(thread: int) -> list[str]:
    """The modules whose import lock `thread` holds."""
    locks = _module_locks()
    if locks is None:
        return []
    held = []
    for name, ref in list(locks.items()):
        lock = ref()
        if lock is not None and getattr(lock, "owner", None) == thread:
            held.append(name)
    return held


def _held_by_other(ref: Any, thread: int | None) -> bool:
    """An import lock (a weak reference from importlib's table) that is alive and not
    the one `thread` took for the import under way."""
    lock = ref() if ref is not None else None
    return lock is not None and (thread is None or getattr(lock, "owner", None) != thread)


def _module_locks() -> dict[str, Any] | None:
    locks = getattr(importlib._bootstrap, "_module_locks", None)  # type: ignore[attr-defined]
    return locks if isinstance(locks, dict) else None


@contextlib.contextmanager
def _import_lock() -> Iterator[None]:
    import _imp

    _imp.acquire_lock()
    try:
        yield
    finally:
        _imp.release_lock()
