"""What both test MCP servers share: a 1x1 PNG for image results, and the two tools
that fail the way real servers do (one dies in the middle of a call, one never
answers). Imported by plain name: the servers run as scripts from this folder."""

from __future__ import annotations

import os
from typing import Any

from mcp.types import ToolAnnotations

# A 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e7c2"
    "0fe30000000049454e44ae426082"
)


def add_failing_tools(server: Any) -> None:
    """`crash` (the process exits mid-call) and `hang` (no answer, ever)."""

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
