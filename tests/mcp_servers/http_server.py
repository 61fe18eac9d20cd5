"""A streamable HTTP MCP server on 127.0.0.1, started as users start one:
`python http_server.py PORT`, then reached at http://127.0.0.1:PORT/mcp."""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.utilities.types import Image
from mcp.types import ToolAnnotations

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e7c2"
    "0fe30000000049454e44ae426082"
)

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


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def crash() -> str:
    """Kill the server in the middle of the call."""
    os._exit(3)


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
async def hang() -> str:
    """Never answer."""
    import anyio

    await anyio.sleep(3600)
    return "unreachable"


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
