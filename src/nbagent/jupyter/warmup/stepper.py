"""Runs the warm-up's plan on the kernel's event loop: in a greenlet, a step of a few
milliseconds at a time, only while no cell runs or waits; half-done imports are hidden
from everyone else between steps (see the package's docstring)."""

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
from typing import Any

from .import_locks import held_by_other, import_lock, locks_held_by, module_locks, others_need
from .plan import Unit

log = logging.getLogger("nbagent.warmup")

STEP_SECONDS = 0.012  # work per step before the event loop gets control back
IDLE_SECONDS = 0.1  # how long the kernel must have been idle before a step after a cell
# The first step: soon after `%load_ext`'s cell has replied (no cell waits to run then,
# or the warm-up sees it waiting); the idle wait would only delay the warm-up.
FIRST_STEP_SECONDS = 0.01


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


# Greenlets given up half-way through an import: never resumed, never unwound.
_ABANDONED: list[Any] = []


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
        self.step_seconds = STEP_SECONDS
        self.idle_seconds = IDLE_SECONDS
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
        return time.monotonic() - self._last_activity >= self.idle_seconds

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
            self._schedule(self.idle_seconds / 2)
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
        """Run the greenlet for about `step_seconds`; True when the plan is done."""
        if self._greenlet_module() is None:
            self.stats.failed.append("greenlet is not installed")
            return True
        if self._hidden and not self._unhide():
            self._drop_half_import()
        if sys.meta_path[0] is not self._finder:  # a finder added since goes after it
            if self._finder in sys.meta_path:
                sys.meta_path.remove(self._finder)
            sys.meta_path.insert(0, self._finder)
        started = time.perf_counter()
        self._deadline = started + self.step_seconds
        if self._glet is None:
            self._glet = self._greenlet.greenlet(self._work)
        out, err = io.StringIO(), io.StringIO()
        try:
            # Nothing the imports print may land in the output of the last cell.
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                self._glet.switch()
                # A thread that met a half-imported module waits for its import lock, or
                # imports a submodule of it: go on until one import or the other is done
                # (a cell joining the thread would wait for a warm-up that waits for the
                # cell; a package hidden under the thread's import breaks it).
                while (
                    not self._glet.dead and self._stack and others_need(self._thread, self._stack)
                ):
                    self._deadline = time.perf_counter() + self.step_seconds
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
        if self._greenlet_module() is None:
            return
        if self._hidden and not self._unhide(importer=self._thread):
            self._drop_half_import()
        started = time.perf_counter()
        self._finish_until = until
        try:
            self._resume()
        finally:
            self._finish_until = None
            self.stats.for_turn_seconds += time.perf_counter() - started
        if self._glet is None:
            self._end("done")

    def _greenlet_module(self) -> Any:
        """The greenlet package, imported at the first step (None if not installed)."""
        if self._greenlet is None:
            try:
                self._greenlet = importlib.import_module("greenlet")
            except ImportError:
                return None
        return self._greenlet

    def _resume(self) -> None:
        """Run the greenlet (a new one from `next_unit` if none) until it pauses or ends.
        A failure drops it with the modules it left half-imported."""
        if self._glet is None:
            self._glet = self._greenlet.greenlet(self._work)
        try:
            self._glet.switch()
        except BaseException:
            self._glet = None
            self._drop_orphans(self._unit_modules | (set(sys.modules) - self._unit_start))
            raise
        if self._glet.dead:
            self._glet = None

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
            self._resume()
        finally:
            if released:
                _imp.acquire_lock()
            self._finishing = False
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
        locks = module_locks()
        with import_lock():
            for name in names:
                found = sys.modules.pop(name, None)
                if found is not None:
                    self._hidden[name] = found
            # Every import lock this thread holds now is the greenlet's (a step runs from
            # the event loop, outside any import): with those of the modules above, the
            # locks of modules not created yet (`from .pkg.mod import x` holds mod's lock
            # while pkg runs). Left in the table, another thread would wait on them.
            for name in {*names, *locks_held_by(self._thread)}:
                if locks is not None and name in locks:
                    self._hidden_locks[name] = locks.pop(name)

    def _unhide(self, importer: int | None = None) -> bool:
        """Put the hidden modules back; False if user code imported any of them meanwhile,
        or is importing one of them now on a thread other than `importer`."""
        locks = module_locks()
        with import_lock():
            if any(name in sys.modules for name in self._hidden):
                return False
            if locks is not None and any(
                held_by_other(locks.get(name), importer) for name in self._hidden_locks
            ):
                return False
            sys.modules.update(self._hidden)
            if locks is not None:
                locks.update(self._hidden_locks)
            self._hidden.clear()
            self._hidden_locks.clear()
        return True

    def _drop_half_import(self) -> None:
        """Give up the half-done import (user code imported the same modules meanwhile,
        or the warm-up stops): its modules stay out of sys.modules and its import locks
        out of importlib's table, for good, and its greenlet stays suspended, kept in
        `_ABANDONED`. Unwinding it instead runs importlib's cleanup, which deletes
        `sys.modules[name]` whoever's module is there: another thread importing the
        same package met a missing parent (KeyError: 'anthropic') or, with ours put back
        for the unwinding, a half-initialised module. No thread waits on those locks
        (`_step` never suspends while one does), and the next step starts the unit again.
        """
        self.stats.dropped += 1
        if self._glet is not None and not self._glet.dead:
            _ABANDONED.append(self._glet)  # a greenlet collected would be unwound
        self._glet = None
        self._hidden.clear()
        self._hidden_locks.clear()
        self._stack = []  # the abandoned frames keep the old list
        self._importing = False

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
        stack = warmup._stack  # this greenlet's, even after it is abandoned
        stack.append(self.spec.name)
        try:
            if isinstance(
                self.loader,
                importlib.machinery.SourceFileLoader | importlib.machinery.SourcelessFileLoader,
            ):
                warmup.pause()
            self.loader.exec_module(module)
        finally:
            stack.pop()


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
