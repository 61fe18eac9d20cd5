"""Tools the loop and provider tests share: one that answers, one that writes, one that
crashes and one that refuses. `written` collects what `save_note` saved (tests clear it)."""

from __future__ import annotations

from nbagent import ToolError, tool


@tool(read_only=True)
def add(a: int, b: int) -> str:
    """Add two integers.

    Args:
        a: first number
        b: second number
    """
    return str(a + b)


written: list[str] = []


@tool(category="write")
def save_note(note: str) -> str:
    """Save a note.

    Args:
        note: the note text
    """
    written.append(note)
    return "saved"


@tool
def explode(reason: str) -> str:
    """Always fails.

    Args:
        reason: why
    """
    raise RuntimeError(f"boom: {reason}")


@tool(read_only=True)
def refuse_politely(x: str) -> str:
    """Raises a ToolError.

    Args:
        x: anything
    """
    raise ToolError(f"cannot handle {x}")
