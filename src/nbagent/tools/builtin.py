"""The seed's thirteen built-in tools, in the seed's order."""

from __future__ import annotations

from collections.abc import Callable

from ..events import Notice
from .base import Tool
from .files import file_tools
from .notify import notify_tools
from .shell import shell_tools
from .workspace import Workspace


def builtin_tools(
    ws: Workspace,
    emit: Callable[[Notice], None],
    *,
    max_read_chars: int = 100_000,
    shell_timeout: float = 30,
) -> list[Tool]:
    """message_notify_user, the file tools and the code tools, bound to `ws` and `emit`."""
    return [
        *notify_tools(emit),
        *file_tools(ws, max_read_chars=max_read_chars),
        *shell_tools(ws, default_timeout=shell_timeout),
    ]
