"""The seed's message_notify_user tool: a message to the user that needs no reply."""

from __future__ import annotations

from collections.abc import Callable

from ..events import Notice
from .base import Tool, tool


def notify_tools(emit: Callable[[Notice], None]) -> list[Tool]:
    """message_notify_user, delivering its messages through `emit`."""

    @tool(read_only=True, category="read")
    def message_notify_user(text: str, attachments: list[str] = []) -> str:  # noqa: B006
        """Send the user a message without waiting for a reply.

        Use it to acknowledge a request, report progress on a long task, point
        out a file you produced, or explain a change of approach. The user sees
        it at once; keep working afterwards.

        Args:
            text: The message to show the user.
            attachments: Optional file paths or URLs to show with the message.
        """
        # The mutable default is safe: it is never modified, and it makes the
        # schema's default [] as in the seed.
        emit(Notice(text=text, attachments=tuple(attachments)))
        return "Message delivered to the user."

    return [message_notify_user]
