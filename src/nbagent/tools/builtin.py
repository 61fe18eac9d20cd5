"""The seed's thirteen built-in tools, in the seed's order, configured from the settings."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..events import Notice
from .base import Tool
from .files import DEFAULT_SECRET_FILE_PATTERNS, FileChangeRecorder, file_tools
from .notify import notify_tools
from .sandbox import SandboxSetting
from .shell import shell_tools
from .workspace import Workspace

if TYPE_CHECKING:
    from ..config import Settings


def builtin_tools(
    ws: Workspace,
    emit: Callable[[Notice], None],
    *,
    shell_timeout: float = 30,
    max_output_chars: int = 30_000,
    secret_file_patterns: Iterable[str] | None = None,
    sandbox: SandboxSetting = "auto",
    network: bool = True,
    recorder: FileChangeRecorder | None = None,
) -> list[Tool]:
    """message_notify_user, the file tools and the code tools, bound to `ws` and `emit`.

    `max_output_chars` is the one clipping limit: each tool keeps its answer within it
    where the output is produced (a process keeps half of it for stdout and half for
    stderr), so nothing is clipped twice. `recorder`: the file tools report their
    changes to it, for review and undo (shell commands are not recorded).
    """
    return [
        *notify_tools(emit),
        *file_tools(
            ws,
            max_output_chars=max_output_chars,
            secret_file_patterns=(
                DEFAULT_SECRET_FILE_PATTERNS
                if secret_file_patterns is None
                else tuple(secret_file_patterns)
            ),
            recorder=recorder,
        ),
        *shell_tools(
            ws,
            default_timeout=shell_timeout,
            max_output_chars=max(max_output_chars // 2, 100),
            sandbox=sandbox,
            network=network,
        ),
    ]


def tools_for(
    settings: Settings,
    ws: Workspace,
    emit: Callable[[Notice], None],
    *,
    recorder: FileChangeRecorder | None = None,
) -> list[Tool]:
    """The built-in tools as a session's settings configure them (`recorder`: see
    `builtin_tools`)."""
    sandbox: SandboxSetting = {"on": True, "off": False}.get(settings.sandbox, "auto")  # type: ignore[assignment]
    return builtin_tools(
        ws,
        emit,
        shell_timeout=settings.shell_timeout,
        max_output_chars=settings.max_tool_output_chars,
        secret_file_patterns=settings.secret_files or None,
        sandbox=sandbox,
        network=settings.sandbox_network,
        recorder=recorder,
    )
