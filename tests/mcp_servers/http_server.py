"""A streamable HTTP MCP server on 127.0.0.1, started as users start one:
`python http_server.py PORT`, then reached at http://127.0.0.1:PORT/mcp."""

from __future__ import annotations

import sys

from failures import PNG, add_failing_tools  # this folder: the servers run as scripts
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.utilities.types import Image
from mcp.types import ToolAnnotations

server = MCPServer("nbagent-test-http", log_level="WARNING")
records = {"alpha": "1", "beta": "2"}


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def lookup(key: str) -> str:
    """Look a record up by key."""
    return records.get(key, "missing")


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def delete_record(key: str) -> str:
    """Delete a record."""
    records.pop(key, None)
    return f"deleted {key}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def whoami(ctx: Context) -> str:
    """The value of the X-Team header the client sent."""
    request = ctx.request_context.request
    return request.headers.get("x-team", "none") if request is not None else "none"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def snapshot() -> Image:
    """A tiny PNG."""
    return Image(data=PNG, format="png")


add_failing_tools(server)


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
