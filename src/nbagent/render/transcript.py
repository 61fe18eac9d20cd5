"""A turn's events folded into display blocks, shared by the notebook surfaces.

The cell output and the widget panel both feed events into a `Transcript` and
render its blocks as Markdown (rich frontends), plain text (every frontend,
headless runs) and `application/vnd.nbagent.turn+json` (the labextension's
renderer). Keeping this in one place means a new event type shows up the same
way everywhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..events import (
    ApprovalRequest,
    ErrorEvent,
    Event,
    Notice,
    TextDelta,
    ThinkingDelta,
    ToolCallEvent,
    ToolCallStart,
    ToolResultEvent,
    TurnEnd,
    Usage,
)
from .format import clip, format_args, format_usage

TURN_MIME = "application/vnd.nbagent.turn+json"


@dataclass
class Block:
    kind: str  # "thinking" | "text" | "tool" | "notice" | "error"
    text: str = ""
    name: str = ""
    call_id: str = ""
    summary: str = ""
    is_error: bool = False
    done: bool = False
    images: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "text": self.text}
        if self.kind == "tool":
            data.update(name=self.name, summary=self.summary, is_error=self.is_error)
            if self.images:
                data["images"] = self.images
        return data


class Transcript:
    """Blocks of one turn, plus its usage and timing."""

    def __init__(self, *, show_thinking: bool = True) -> None:
        self.show_thinking = show_thinking
        self.blocks: list[Block] = []
        self.usage = Usage()
        self.started = time.monotonic()
        self.stop_reason: str | None = None
        self.status = "thinking…"

    def add(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._open("text").text += event.text
            self.status = "writing…"
        elif isinstance(event, ThinkingDelta):
            self._open("thinking").text += event.text
            self.status = "thinking…"
        elif isinstance(event, ToolCallStart):
            self._close_open()
            self.status = f"calling {event.name}…"
        elif isinstance(event, ToolCallEvent):
            self._close_open()
            args = format_args(event.call.input)
            self.blocks.append(
                Block("tool", text=args, name=event.call.name, call_id=event.call.id)
            )
            self.status = f"running {event.call.name}…"
        elif isinstance(event, ToolResultEvent):
            block = self._tool_block(event.call.id)
            if block is None:
                block = Block(
                    "tool",
                    text=format_args(event.call.input),
                    name=event.call.name,
                    call_id=event.call.id,
                )
                self.blocks.append(block)
            block.summary = event.output.summary
            block.is_error = event.output.is_error
            block.done = True
            block.images = [
                {"media_type": b["source"]["media_type"], "data": b["source"]["data"]}
                for b in event.output.images()
                if b.get("source", {}).get("type") == "base64"
            ]
            self.status = "thinking…"
        elif isinstance(event, ApprovalRequest):
            self._close_open()
            self.blocks.append(
                Block(
                    "notice",
                    text=f"Approval needed: {event.call.name} ({event.category})",
                    done=True,
                )
            )
            self.status = "waiting for approval…"
        elif isinstance(event, Notice):
            self._close_open()
            self.blocks.append(Block("notice", text=event.text, done=True))
        elif isinstance(event, ErrorEvent):
            self._close_open()
            self.blocks.append(Block("error", text=event.message, done=True))
        elif isinstance(event, Usage):
            self.usage = self.usage + event
        elif isinstance(event, TurnEnd):
            self._close_open()
            self.stop_reason = event.stop_reason
            if event.stop_reason == "interrupted":
                self.blocks.append(
                    Block("notice", text="⏹ Interrupted: the conversation is intact.", done=True)
                )
            self.status = ""

    # -- rendering ----------------------------------------------------------

    def footer(self) -> str:
        """The turn's usage line (as on every surface) and its elapsed time."""
        elapsed = time.monotonic() - self.started
        return f"{format_usage(self.usage)} · {elapsed:.1f}s"

    def markdown(self, blocks: list[Block] | None = None) -> str:
        return "\n\n".join(filter(None, (self._block_markdown(b) for b in (blocks or self.blocks))))

    def plain(self, blocks: list[Block] | None = None) -> str:
        return "\n\n".join(filter(None, (self._block_plain(b) for b in (blocks or self.blocks))))

    def json(self, blocks: list[Block] | None = None, footer: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "v": 1,
            "blocks": [b.to_json() for b in (blocks or self.blocks) if self._visible(b)],
        }
        if footer:
            data["footer"] = footer
        return data

    def _visible(self, block: Block) -> bool:
        return self.show_thinking or block.kind != "thinking"

    def _block_markdown(self, b: Block) -> str:
        if not self._visible(b) or (b.kind in ("text", "thinking") and not b.text.strip()):
            return ""
        if b.kind == "text":
            return b.text
        if b.kind == "thinking":
            quoted = "\n".join("> " + line if line else ">" for line in b.text.strip().splitlines())
            return f"> 💭 *thinking*\n>\n{quoted}"
        if b.kind == "tool":
            mark = "✗" if b.is_error else ("✓" if b.done else "…")
            line = f"`⚙ {b.name}({clip(b.text, 120)})` {mark}"
            if b.summary:
                line += f" {_escape_md(clip(b.summary, 160))}"
            return line
        if b.kind == "error":
            return f"**Error:** {_escape_md(b.text)}"
        return f"ℹ️ *{_escape_md(b.text)}*"

    def _block_plain(self, b: Block) -> str:
        if not self._visible(b) or (b.kind in ("text", "thinking") and not b.text.strip()):
            return ""
        if b.kind == "text":
            return b.text
        if b.kind == "thinking":
            return "\n".join("  | " + line for line in b.text.strip().splitlines())
        if b.kind == "tool":
            status = "error" if b.is_error else ("ok" if b.done else "running")
            line = f"[tool] {b.name}({clip(b.text, 120)}) -> {status}"
            return line + (f": {clip(b.summary, 160)}" if b.summary else "")
        if b.kind == "error":
            return f"Error: {b.text}"
        return f"[note] {b.text}"

    # -- internals ----------------------------------------------------------

    def _open(self, kind: str) -> Block:
        if self.blocks and self.blocks[-1].kind == kind and not self.blocks[-1].done:
            return self.blocks[-1]
        self._close_open()
        block = Block(kind)
        self.blocks.append(block)
        return block

    def _close_open(self) -> None:
        if self.blocks and self.blocks[-1].kind in ("text", "thinking"):
            self.blocks[-1].done = True

    def _tool_block(self, call_id: str) -> Block | None:
        for block in reversed(self.blocks):
            if block.kind == "tool" and block.call_id == call_id:
                return block
        return None


def _escape_md(text: str) -> str:
    return text.replace("*", "\\*").replace("_", "\\_").replace("`", "\\`")
