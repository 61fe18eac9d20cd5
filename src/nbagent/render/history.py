"""A Messages API history replayed as what the user saw: prompts and turn transcripts.

The panel shows past turns (a `%%agent` cell's, or the conversation before the
panel opened) and `%agent history` prints the conversation; both read the history
through `replay`, so a past turn looks like a live one on every surface. The
history does not keep the live tool summaries, so each tool result gets a short
summary of its own here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..events import (
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
    ToolOutput,
    ToolResultEvent,
)
from .format import clip
from .transcript import Transcript

SUMMARY_WIDTH = 100

# run_python's section labels ("[stdout]", "[display 2]", "[Out]"): not a summary.
_LABEL = re.compile(r"^\[[\w ]+( \d+)?\]$")


@dataclass
class Prompt:
    """What the user sent (an attachment shows as `[image]` or `[document]`)."""

    text: str


Entry = Prompt | Transcript


def content_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A message's content as a list of blocks (a string is one text block)."""
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in (content or []) if isinstance(b, dict)]


def message_items(messages: Iterable[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(role, content block) pairs of `messages`, in order."""
    return [(m.get("role", "user"), b) for m in messages for b in content_blocks(m)]


def replay(messages: Iterable[dict[str, Any]], *, show_thinking: bool = True) -> list[Entry]:
    """The conversation as prompts and one transcript per assistant run (text,
    thinking, tool calls marked done with a summary of their results)."""
    return replay_items(message_items(messages), show_thinking=show_thinking)


def replay_items(
    items: Iterable[tuple[str, dict[str, Any]]], *, show_thinking: bool = True
) -> list[Entry]:
    """`replay` over (role, content block) pairs, for a caller that shows a
    history in parts (the panel adds what happened since it last looked)."""
    entries: list[Entry] = []
    transcript: Transcript | None = None
    calls: dict[str, ToolCall] = {}

    def flush() -> None:
        nonlocal transcript
        if transcript is not None and transcript.blocks:
            for b in transcript.blocks:
                b.done = b.done or b.kind != "tool"  # a tool without a result stays open
            entries.append(transcript)
        transcript = None

    def current() -> Transcript:
        nonlocal transcript
        if transcript is None:
            transcript = Transcript(show_thinking=show_thinking)
            transcript.status = ""
        return transcript

    for role, block in items:
        kind = block.get("type")
        if role == "user":
            if kind == "tool_result":
                call_id = str(block.get("tool_use_id", ""))
                output = result_output(block)
                call = calls.get(call_id) or ToolCall(call_id, "tool", {})
                current().add(ToolResultEvent(call, output))
            elif kind == "text":
                flush()
                entries.append(Prompt(str(block.get("text", ""))))
            elif kind in ("image", "document"):
                flush()
                entries.append(Prompt(f"[{kind}]"))
            continue
        t = current()
        if t.blocks and t.blocks[-1].kind in ("text", "thinking"):
            t.blocks[-1].done = True  # each content block is its own paragraph
        if kind == "text":
            t.add(TextDelta(str(block.get("text", ""))))
        elif kind == "thinking":
            t.add(ThinkingDelta(str(block.get("thinking", ""))))
        elif kind == "tool_use":
            call = ToolCall(
                str(block.get("id", "")),
                str(block.get("name", "tool")),
                dict(block.get("input") or {}),
            )
            calls[call.id] = call
            t.add(ToolCallEvent(call))
    flush()
    return entries


def result_output(block: dict[str, Any]) -> ToolOutput:
    """A stored `tool_result` block as a tool output, with a one-line summary."""
    content = block.get("content", "")
    output = ToolOutput(
        content if isinstance(content, (str, list)) else str(content),
        bool(block.get("is_error")),
    )
    return ToolOutput(output.content, output.is_error, result_summary(output))


def result_summary(output: ToolOutput) -> str:
    """A one-line summary of a past tool result: its first line of content (not a
    section label), how many more lines, and how many images."""
    lines = [ln for ln in output.text().strip().splitlines() if ln.strip()]
    content = [ln for ln in lines if not _LABEL.match(ln.strip())]
    if content:
        first = clip(content[0].strip(), SUMMARY_WIDTH)
    else:
        first = "error" if output.is_error else "ok"
    extra = f" (+{len(content) - 1} lines)" if len(content) > 1 else ""
    n = len(output.images())
    if n:
        extra += f" [{n} image{'s' if n > 1 else ''}]"
    return first + extra


def history_text(messages: Iterable[dict[str, Any]], *, show_thinking: bool = True) -> str:
    """The conversation as plain text, for `%agent history` and other text surfaces."""
    parts = []
    for entry in replay(messages, show_thinking=show_thinking):
        if isinstance(entry, Prompt):
            parts.append("You: " + entry.text.strip())
        else:
            body = entry.plain()
            if body:
                parts.append("Agent:\n" + body)
    return "\n\n".join(parts)
