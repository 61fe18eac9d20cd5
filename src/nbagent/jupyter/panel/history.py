"""The panel's view of the conversation's past: what happened while it was not looking.

`%%agent` cells share the panel's conversation, and a reset replaces it; before each
turn the panel shows the messages (and content blocks) added since it last looked,
replayed by `nbagent.render.history` as compact widgets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ipywidgets as widgets

from ...render.history import Prompt, content_blocks, replay_items
from .html import blocks_html, user_html
from .style import css

Items = list[tuple[str, dict[str, Any]]]


def history_widgets(
    items: Iterable[tuple[str, dict[str, Any]]], *, show_thinking: bool = True
) -> list[Any]:
    """Compact widgets for past (role, content block) pairs: user prompts, and each
    assistant run (text, collapsed thinking, tool lines with result summaries)."""
    out: list[Any] = []
    for entry in replay_items(items, show_thinking=show_thinking):
        if isinstance(entry, Prompt):
            out.append(css(widgets.HTML(value=user_html(entry.text)), "user"))
            continue
        value = blocks_html(entry.blocks, show_thinking=show_thinking)
        if value:
            out.append(css(widgets.HTML(value=value), "past-turn"))
    return out


class SeenMessages:
    """How far into a conversation (a list of messages) the panel has shown.

    The conversation is the agent's list object: another list means a reset, and
    so does a shorter one. Within the last message seen, only its content blocks
    after the ones already shown are new (a tool result may be appended to it).
    """

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] | None = None
        self.length = 0
        self.blocks = 0  # content blocks of the last message seen

    def is_new_conversation(self, messages: list[dict[str, Any]]) -> bool:
        return messages is not self.messages or len(messages) < self.length

    def new_items(self, messages: list[dict[str, Any]]) -> Items:
        """(role, content block) pairs added since `mark` (all of them after a reset)."""
        if self.is_new_conversation(messages):
            self.messages, self.length, self.blocks = messages, 0, 0
        items: Items = []
        if self.length:
            last = messages[self.length - 1]
            items += [(last["role"], b) for b in content_blocks(last)[self.blocks :]]
        for message in messages[self.length :]:
            items += [(message["role"], b) for b in content_blocks(message)]
        return items

    def mark(self, messages: list[dict[str, Any]]) -> None:
        """Everything in `messages` has been shown."""
        self.messages = messages
        self.length = len(messages)
        self.blocks = len(content_blocks(messages[-1])) if messages else 0
