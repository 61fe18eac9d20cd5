"""Which part of a turn is still live, for surfaces that update in place.

A surface shows frozen blocks once and re-renders only the live window, so an
update costs the window's size, not the transcript's. The window freezes its
finished blocks when it grows past `window_chars`; a long streaming text block
is first cut at a paragraph break outside code fences, so Markdown stays whole.
"""

from __future__ import annotations

from .transcript import Block, Transcript


class LiveWindow:
    def __init__(self, transcript: Transcript, window_chars: int) -> None:
        self.transcript = transcript
        self.window_chars = window_chars
        self.start = 0  # index of the first live block

    @property
    def blocks(self) -> list[Block]:
        return self.transcript.blocks[self.start :]

    def chars(self) -> int:
        return sum(len(b.text) + len(b.summary) for b in self.blocks)

    def freezable_end(self) -> int | None:
        """The end of the blocks to freeze now, or None.

        Only blocks before the first unfinished one: a frozen block is never shown
        again, so a tool call frozen while running would keep "running" for good
        (parallel calls, or a long call before the streaming text).
        """
        self._split_long_text()
        if self.chars() <= self.window_chars:
            return None
        live = self.blocks
        finished = next((i for i, b in enumerate(live) if not b.done), len(live))
        return self.start + finished if finished > 0 else None

    def take(self, end: int) -> list[Block]:
        """Freeze blocks up to `end` and return them (empty if nothing new)."""
        if end <= self.start:
            return []
        blocks = self.transcript.blocks[self.start : end]
        self.start = end
        return blocks

    def _split_long_text(self) -> None:
        blocks = self.transcript.blocks
        if not blocks or blocks[-1].kind != "text" or blocks[-1].done:
            return
        block = blocks[-1]
        if len(block.text) <= self.window_chars:
            return
        cut = paragraph_break(block.text)
        if cut <= 0:
            return
        blocks.insert(len(blocks) - 1, Block("text", text=block.text[:cut], done=True))
        block.text = block.text[cut:]


def paragraph_break(text: str) -> int:
    """The position after the last paragraph break not inside a ``` fence, or -1."""
    pos = len(text)
    while True:
        pos = text.rfind("\n\n", 0, pos)
        if pos <= 0:
            return -1
        if text.count("```", 0, pos) % 2 == 0:
            return pos + 2
