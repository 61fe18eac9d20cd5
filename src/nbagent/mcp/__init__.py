"""MCP servers as tool sources (the `mcp` SDK 2.x, imported only when a server starts).

`McpManager` is the session's handle: `tools_for_turn(settings, may_start=..., emit=...)`
when a turn begins, `status()` / `status_text()` for `%agent mcp`, `close()` at the end.
"""

from .config import LoadedConfig, ServerConfig, load_servers
from .manager import McpManager, ServerStatus
from .tools import McpTool, tool_name

__all__ = [
    "LoadedConfig",
    "McpManager",
    "McpTool",
    "ServerConfig",
    "ServerStatus",
    "load_servers",
    "tool_name",
]
