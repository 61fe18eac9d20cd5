"""Which tool calls may run without asking.

Modes: "auto" runs everything; "ask" asks before write, execute and
destructive tools; "read-only" refuses all but read tools. An "always" answer
is remembered per tool name for the session.
"""

from __future__ import annotations

from typing import Literal

from .errors import ConfigError
from .tools.base import Category

PermissionMode = Literal["auto", "ask", "read-only"]
MODES: tuple[PermissionMode, ...] = ("auto", "ask", "read-only")

Verdict = Literal["allow", "deny", "ask"]


def check_mode(mode: str) -> PermissionMode:
    if mode not in MODES:
        raise ConfigError(f"permission mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode  # type: ignore[return-value]


class PermissionPolicy:
    def __init__(self, mode: str = "auto") -> None:
        self.mode: PermissionMode = check_mode(mode)
        self.always_allowed: set[str] = set()

    def verdict(self, tool_name: str, category: Category) -> Verdict:
        if category == "read":
            return "allow"
        if self.mode == "read-only":
            return "deny"
        if self.mode == "auto" or tool_name in self.always_allowed:
            return "allow"
        return "ask"

    def remember(self, tool_name: str) -> None:
        self.always_allowed.add(tool_name)

    def refusal(self, tool_name: str, category: Category) -> str:
        if self.mode == "read-only":
            return (
                f"Permission denied: {tool_name} is a {category} tool and this session is "
                "read-only. Use read tools only, or ask the user to change the mode."
            )
        return f"Permission denied: the user did not allow {tool_name} to run."
