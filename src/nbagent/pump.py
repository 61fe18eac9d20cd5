"""`pump`: the one way every surface consumes a turn's events.

The cell output, the widget panel, the JupyterLab sidebar, the terminal and
`Agent.run` all feed a turn's events to their renderer through here, so these are
handled once:
- an interrupt (Ctrl-C, the kernel's stop button) that lands in the loop or in a
  renderer ends the turn with a valid history and a `TurnEnd("interrupted")`;
- "a turn is already running" and other session errors become one `ErrorEvent`
  line and a `TurnEnd`, never a traceback;
- a renderer that fails is logged and skipped: the turn goes on, so the history
  stays valid.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .errors import AgentBusyError, NBAgentError
from .events import ErrorEvent, Event, TurnEnd

log = logging.getLogger("nbagent.pump")

BUSY_MESSAGE = "A turn is already running in this session: wait for it to end, or stop it."


@dataclass
class PumpResult:
    end: TurnEnd | None = None
    error: BaseException | None = None  # the exception of an ErrorEvent, if any
    busy: bool = False  # the turn never started: another one was running

    @property
    def stop_reason(self) -> str:
        return self.end.stop_reason if self.end else ""


def pump(
    events: Iterable[Event],
    handle: Callable[[Event], None],
    *,
    before_event: Callable[[], None] | None = None,
) -> PumpResult:
    """Feed `events` to `handle` until the turn ends; return how it ended.

    `before_event` runs before each event is handled (e.g. to forward a Stop button).
    """
    result = PumpResult()

    def emit(event: Event) -> None:
        if isinstance(event, ErrorEvent):
            result.error = event.exception
        elif isinstance(event, TurnEnd):
            result.end = event
        try:
            handle(event)
        except KeyboardInterrupt:
            raise
        except Exception:  # a renderer bug must not break the turn or its history
            log.exception("a surface failed to show an event")

    iterator = iter(events)
    try:
        try:
            for event in iterator:
                if before_event is not None:
                    before_event()
                emit(event)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # a no-op after a normal end; else the loop makes the history valid
    except KeyboardInterrupt:
        # Landed in a renderer (the loop handles its own): closing the stream above
        # made the history valid; tell the surface.
        if result.end is None:
            emit(TurnEnd("interrupted", "Interrupted by the user."))
    except AgentBusyError:
        result.busy = True
        emit(ErrorEvent(BUSY_MESSAGE))
        emit(TurnEnd("busy", BUSY_MESSAGE))
    except NBAgentError as exc:
        emit(ErrorEvent(str(exc), exc))
        emit(TurnEnd("error", str(exc)))
    return result
