"""Render the agent loop's events on a terminal with `rich`.

Text streams as it arrives (written raw: no Markdown re-render, so nothing is
printed twice); thinking is dimmed; each tool call is one compact line and its
result one more; errors are one red line; each turn ends with a footer of
tokens, cost and elapsed time. Arguments and usage are formatted by
`nbagent.render.format`, as on every other surface (`format_args` and
`format_usage` stay importable from here for the REPL).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from rich.console import Console
from rich.text import Text

from ..events import (
    ApprovalRequest,
    ErrorEvent,
    Event,
    Notice,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
    ToolResultEvent,
    TurnEnd,
    TurnStart,
    Usage,
)
from ..render.format import format_args, format_usage
from ..tools.runner import summarize


class TerminalRenderer:
    """Turns loop events into terminal output.

    Args:
        console: where activity goes (tool lines, notices, errors, footer).
        text_console: where the model's text goes (default: `console`).
        stream_text: print text deltas as they come; off when the caller prints
            the answer itself (`nbagent run` with stdout redirected).
        interactive_approval: an approve callable asks on the terminal, so
            `ApprovalRequest` events need no line of their own.
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        text_console: Console | None = None,
        stream_text: bool = True,
        interactive_approval: bool = False,
    ) -> None:
        self.console = console or Console(highlight=False)
        self.text_console = text_console or self.console
        self.stream_text = stream_text
        self.interactive_approval = interactive_approval
        self._open: Console | None = None  # a console whose last line is unfinished
        self._kind: str | None = None  # "text" or "thinking" while a stream is open
        self._lock = threading.RLock()
        self.turn_usage = Usage()
        self._usage_seen = False
        self._started = time.monotonic()
        self._round_calls = 0  # tool calls of the latest model message

    # -- lines ----------------------------------------------------------------

    def break_line(self) -> None:
        """End a half-written line of streamed text, if any."""
        with self._lock:
            if self._open is not None:
                self._open.file.write("\n")
                self._open.file.flush()
                self._open = None
            self._kind = None

    def line(self, text: Text | str, style: str = "") -> None:
        """One line of activity (never wrapped by rich, so it stays one line when piped)."""
        with self._lock:
            self.break_line()
            if isinstance(text, str):
                text = Text(text, style=style)
            self.console.print(text, soft_wrap=True)

    def error(self, message: str) -> None:
        self.line(Text("✗ " + message, style="bold red"))

    def info(self, message: str, style: str = "dim") -> None:
        self.line(Text(message, style=style))

    def log_line(self, message: str) -> None:
        self.line(Text(message, style="dim"))

    # -- events ---------------------------------------------------------------

    def begin_turn(self) -> None:
        self.turn_usage = Usage()
        self._usage_seen = False
        self._started = time.monotonic()

    def handle(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._stream(event.text, "text")
        elif isinstance(event, ThinkingDelta):
            self._stream(event.text, "thinking")
        elif isinstance(event, ToolCallEvent):
            self.tool_call(event.call)
        elif isinstance(event, ToolResultEvent):
            output = event.output
            summary = output.summary or summarize(output) or "(no output)"
            # With several calls in a round, results say which call they answer.
            name = "" if self._round_calls == 1 else f"{event.call.name}: "
            extra = f" ({event.elapsed:.1f}s)" if event.elapsed >= 1 else ""
            self.line(
                Text(f"  ↳ {name}{summary}{extra}", style="red" if output.is_error else "dim")
            )
        elif isinstance(event, Notice):
            style = "bold yellow" if event.level == "warning" else "bold cyan"
            mark = "⚠" if event.level == "warning" else "●"
            self.line(Text(f"{mark} {event.text}", style=style))
            for path in event.attachments:
                self.line(Text(f"  attachment: {path}", style="cyan"))
        elif isinstance(event, ApprovalRequest):
            if not self.interactive_approval:
                self.line(
                    Text(
                        f"⏸ {event.call.name} needs approval ({event.category} tool): "
                        f"{format_args(event.call.input)}",
                        style="yellow",
                    )
                )
        elif isinstance(event, Usage):  # ends a model message; its tool calls follow
            self.turn_usage = self.turn_usage + event
            self._usage_seen = True
            self._round_calls = 0
        elif isinstance(event, ErrorEvent):
            self.error(event.message)
        elif isinstance(event, TurnStart):
            self.begin_turn()
        elif isinstance(event, TurnEnd):
            self.turn_end(event)
        # ToolCallStart / ToolInputDelta: the complete ToolCallEvent follows.

    def tool_call(self, call: ToolCall) -> None:
        self._round_calls += 1
        line = Text("⚙ ", style="yellow")
        line.append(call.name, style="bold")
        args = format_args(call.input)
        if args:
            line.append(" " + args, style="dim")
        self.line(line)

    def turn_end(self, event: TurnEnd) -> None:
        if event.stop_reason == "interrupted" and self._open is None and self.console.is_terminal:
            # The terminal echoed ^C (or an input prompt is open) on the current line.
            self.console.file.write("\n")
        self.break_line()
        if event.stop_reason == "interrupted":
            self.line(Text("⏹ Interrupted.", style="yellow"))
        elif event.stop_reason == "awaiting_approval":
            self.line(Text(f"⏸ {event.message}", style="yellow"))
        elif event.stop_reason == "awaiting_tool_results":
            self.line(Text(f"⏸ {event.message}", style="yellow"))
        if self._usage_seen:
            elapsed = time.monotonic() - self._started
            self.line(Text(f"─ {format_usage(self.turn_usage)} · {elapsed:.1f}s", style="dim"))

    def _stream(self, text: str, kind: str) -> None:
        if kind == "text" and not self.stream_text:
            return
        if not text:
            return
        with self._lock:
            if self._kind != kind:
                self.break_line()
                self._kind = kind
            target = self.text_console if kind == "text" else self.console
            if kind == "text":
                target.file.write(text)
                target.file.flush()
            else:
                target.print(Text(text, style="dim italic"), end="", soft_wrap=True)
            self._open = None if text.endswith("\n") else target


class _RendererLogHandler(logging.Handler):
    def __init__(self, emit_line: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self._emit_line = emit_line

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit_line(self.format(record))
        except Exception:  # pragma: no cover - logging must never break a turn
            self.handleError(record)


def show_tool_logs(renderer: TerminalRenderer) -> logging.Handler:
    """Show `nbagent.tools` log lines (`[TOOL][name] key=value`) through `renderer`."""
    handler = _RendererLogHandler(renderer.log_line)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("nbagent.tools")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler
