"""Clip big tool outputs, saying exactly what was left out, within one limit.

A tool that produces text clips it where it produces it (read_file cuts at
whole lines and says which line to continue from; processes keep a head and a
tail). `clip_text` is the head-and-tail clip for text that has no better
place to cut: its result, notice included, never exceeds the limit, so a later
clip at the same limit leaves it unchanged.
"""

from __future__ import annotations

from typing import Any

from ..events import ToolOutput

_MAX_TAIL = 2000  # errors and totals are often last; a little of the end is enough
_SNAP = 0.25  # move a cut back to a line break if one is this close (as a share of the piece)


def clip_text(text: str, limit: int) -> str:
    """`text`, or its head and tail around a notice, in at most `limit` characters."""
    if len(text) <= limit:
        return text
    total_lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    # The notice's longest form for these totals: every number as wide as the largest.
    widest = _notice(len(text), len(text), total_lines, total_lines, total_lines)
    budget = limit - len(widest)
    if budget < 2:  # no room for a notice: keep what fits
        return text[: max(limit, 0)]
    tail = min(budget // 5, _MAX_TAIL)
    head = budget - tail
    head_end = _snap_back(text, 0, head)
    tail_start = _snap_forward(text, len(text) - tail, len(text))
    first = text.count("\n", 0, head_end) + 1  # the line the omitted text starts in
    last = first + text.count("\n", head_end, tail_start - 1)  # ... and ends in
    whole = _at_line_start(text, head_end) and _at_line_start(text, tail_start)
    notice = _notice(tail_start - head_end, len(text), first, last, total_lines, whole)
    if _at_line_start(text, head_end):
        notice = notice[1:]  # the head already ends its line
    return text[:head_end] + notice + text[tail_start:]


def _notice(
    omitted: int, total: int, first: int, last: int, total_lines: int, whole: bool = False
) -> str:
    lines = ""
    if total_lines > 1:
        span = f"lines {first:,}-{last:,}" if whole else f"from line {first:,} to line {last:,}"
        lines = f" ({span} of {total_lines:,})"
    return f"\n[... output clipped: {omitted:,} of {total:,} characters omitted{lines} ...]\n"


def _at_line_start(text: str, i: int) -> bool:
    return i == 0 or text[i - 1] == "\n"


def _snap_back(text: str, start: int, end: int) -> int:
    """`end`, or just after the last line break before it if that is near."""
    cut = text.rfind("\n", start, end)
    return cut + 1 if cut >= 0 and end - (cut + 1) <= (end - start) * _SNAP else end


def _snap_forward(text: str, start: int, end: int) -> int:
    """`start`, or just after the first line break after it if that is near."""
    cut = text.find("\n", start, end)
    return cut + 1 if cut >= 0 and cut + 1 - start <= (end - start) * _SNAP else start


def clip_output(output: ToolOutput, limit: int) -> ToolOutput:
    if isinstance(output.content, str):
        clipped: str | list[dict[str, Any]] = clip_text(output.content, limit)
    else:
        clipped = [
            {**b, "text": clip_text(b["text"], limit)} if b.get("type") == "text" else b
            for b in output.content
        ]
    return ToolOutput(clipped, output.is_error, output.summary)
