"""A stdio MCP server, started as users start one: `python stdio_server.py`.

Tools cover each permission category (by annotations), an image result, a server
that dies in the middle of a call and one that never answers. `--hang-on-start`
makes a server that never finishes starting.
"""

from __future__ import annotations

import os
import sys
import time

from failures import PNG, add_failing_tools  # this folder: the servers run as scripts
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.utilities.types import Image
from mcp.types import ToolAnnotations

server = MCPServer("nbagent-test-stdio")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def echo(text: str) -> str:
    """Echo the text back."""
    return f"echo: {text}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def env_names() -> str:
    """The names of the environment variables this server sees."""
    return ",".join(sorted(os.environ))


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def pid() -> int:
    """This server's process id."""
    return os.getpid()


@server.tool(annotations=ToolAnnotations(destructive_hint=False))
def save_note(note: str) -> str:
    """Append a note to the notes file (NOTES_FILE)."""
    with open(os.environ["NOTES_FILE"], "a", encoding="utf-8") as f:
        f.write(note + "\n")
    return "saved"


@server.tool()
def wipe_notes() -> str:
    """Delete the notes file (unannotated, so destructive by MCP's defaults)."""
    os.remove(os.environ["NOTES_FILE"])
    return "wiped"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def chart() -> Image:
    """A tiny PNG chart."""
    return Image(data=PNG, format="png")


add_failing_tools(server)


if __name__ == "__main__":
    if "--hang-on-start" in sys.argv:
        time.sleep(3600)
    server.run()
