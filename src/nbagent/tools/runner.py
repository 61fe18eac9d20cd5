"""Run the model's tool calls: validation, errors as results, concurrency, clipping.

Every output leaving the runner (content, summary, error text) is redacted of
known secrets, before clipping so a clip can never leave half a secret behind;
the `[TOOL]` log line of each call is redacted too.

Consecutive read-only calls run concurrently in threads; anything that writes
or executes runs alone, on the calling thread, in the order the model asked.
(Live-namespace tools must run on the kernel's main thread.)
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from ..events import ToolCall, ToolOutput
from ..redact import current_redactor
from .base import Tool, ToolError, log_call
from .base import log as tool_log
from .clip import clip_output


class ToolRunner:
    def __init__(
        self, tools: Iterable[Tool], *, max_output_chars: int = 30_000, max_workers: int = 4
    ):
        self.tools: dict[str, Tool] = {}
        for t in tools:
            if t.name in self.tools:
                raise ValueError(f"two tools are named {t.name!r}")
            self.tools[t.name] = t
        self.max_output_chars = max_output_chars
        self.max_workers = max_workers
        # When the loop runs off the main thread (the widget panel), this runs
        # main-thread tools there: callable(fn) -> fn's result.
        self.main_thread_dispatch: Callable[[Callable[[], ToolOutput]], ToolOutput] | None = None

    def params(self) -> list[dict]:
        return [t.to_param() for t in self.tools.values()]

    def category(self, name: str) -> str:
        tool = self.tools.get(name)
        return tool.category if tool else "read"

    def run_one(self, call: ToolCall) -> ToolOutput:
        """Run one call; every failure becomes an `is_error` result the model can read."""
        tool = self.tools.get(call.name)
        if tool is None:
            names = ", ".join(sorted(self.tools)) or "none"
            return current_redactor().redact_output(
                ToolOutput(f"Unknown tool '{call.name}'. Available tools: {names}.", is_error=True)
            )
        if tool_log.isEnabledFor(logging.INFO):
            # Redacted before log_call shortens the values, so no prefix of a secret survives.
            log_call(call.name, current_redactor().redact_obj(call.input))
        try:
            if tool.main_thread and self.main_thread_dispatch is not None:
                output = self.main_thread_dispatch(lambda: tool.call(call.input))
            else:
                output = tool.call(call.input)
        except ToolError as exc:
            output = ToolOutput(f"Error: {exc}", is_error=True)
        except Exception as exc:  # a tool bug must not end the conversation
            output = ToolOutput(
                f"Error: {call.name} raised {type(exc).__name__}: {exc}", is_error=True
            )
        # Asked again after the call: the tool may have set a new secret variable.
        output = clip_output(current_redactor().redact_output(output), self.max_output_chars)
        if not output.summary:
            output = ToolOutput(output.content, output.is_error, summarize(output))
        return output

    def run(self, calls: list[ToolCall]) -> Iterator[tuple[ToolCall, ToolOutput, float]]:
        """Yield (call, output, seconds) in the model's order."""
        i = 0
        while i < len(calls):
            j = i
            while j < len(calls) and self._parallel_safe(calls[j]):
                j += 1
            if j - i > 1:
                yield from self._run_concurrently(calls[i:j])
                i = j
                continue
            start = time.perf_counter()
            output = self.run_one(calls[i])
            yield calls[i], output, time.perf_counter() - start
            i += 1

    def _parallel_safe(self, call: ToolCall) -> bool:
        tool = self.tools.get(call.name)
        return tool is not None and tool.read_only and not tool.main_thread

    def _run_concurrently(
        self, calls: list[ToolCall]
    ) -> Iterator[tuple[ToolCall, ToolOutput, float]]:
        start = time.perf_counter()
        pool = ThreadPoolExecutor(max_workers=min(self.max_workers, len(calls)))
        finished = False
        try:
            futures = [pool.submit(self.run_one, c) for c in calls]
            for call, future in zip(calls, futures, strict=True):
                output = future.result()
                yield call, output, time.perf_counter() - start
            finished = True
        finally:
            # On an interrupt (or a consumer that stops), do not wait for a blocked read:
            # the turn ends now; the thread finishes or times out on its own.
            pool.shutdown(wait=finished, cancel_futures=not finished)


# Lines that label a section of a tool's output rather than say anything: run_python's
# "[stdout]", "[display 2]", "[Out]" and the "(text/html)" marker of a rich output.
_LABEL = re.compile(r"^(\[[\w ]+( \d+)?\]|\((text|application|image)/[\w.+-]+\))$")


def summarize(output: ToolOutput, width: int = 100) -> str:
    """One line for a tool's result: its first line of content (section labels skipped),
    how many more lines there are, and how many images."""
    lines = [ln.strip() for ln in output.text().splitlines()]
    content = [ln for ln in lines if ln and not _LABEL.match(ln)]
    first = content[0] if content else ""
    if len(first) > width:
        first = first[: width - 1] + "…"
    extra = f" (+{len(content) - 1} lines)" if len(content) > 1 else ""
    images = len(output.images())
    if images:
        extra += f" [{images} image{'s' if images > 1 else ''}]"
    return (first + extra).strip()
