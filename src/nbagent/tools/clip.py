"""Clip big tool outputs, saying so, so the model knows it saw a part."""

from __future__ import annotations

from typing import Any

from ..events import ToolOutput


def clip_text(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    # Keep the head and a little of the tail: errors and totals are often last.
    tail = min(limit // 5, 2000)
    head = limit - tail
    return (
        text[:head]
        + f"\n\n[... output clipped: showing {head:,} + {tail:,} of {len(text):,} characters ...]\n\n"
        + text[len(text) - tail :]
    )


def clip_output(output: ToolOutput, limit: int) -> ToolOutput:
    if isinstance(output.content, str):
        clipped: str | list[dict[str, Any]] = clip_text(output.content, limit)
    else:
        clipped = [
            {**b, "text": clip_text(b["text"], limit)} if b.get("type") == "text" else b
            for b in output.content
        ]
    return ToolOutput(clipped, output.is_error, output.summary)
