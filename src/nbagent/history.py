"""Conversation history kept as Messages API params (plain dicts).

Plain dicts serialise to JSON for persistence and the frontend, and are what
the API takes back. The invariant: every assistant `tool_use` is answered by a
`tool_result` in the next user message, and thinking blocks keep their
signatures, so the history is always valid to send.
"""

from __future__ import annotations

from typing import Any

from .events import ToolCall, ToolOutput


def block_to_param(block: Any) -> dict[str, Any]:
    """An SDK content block as the param dict the API accepts back."""
    kind = block.type
    if kind == "text":
        return {"type": "text", "text": block.text}
    if kind == "thinking":
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data}
    if kind == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    # Server tool blocks and future types: the SDK's own serialisation.
    return block.to_dict(mode="json", exclude_none=True)


def tool_calls_in(message: dict[str, Any]) -> list[ToolCall]:
    content = message.get("content")
    if message.get("role") != "assistant" or not isinstance(content, list):
        return []
    return [
        ToolCall(b["id"], b["name"], b["input"] if isinstance(b["input"], dict) else {})
        for b in content
        if b.get("type") == "tool_use"
    ]


def tool_result_block(call_id: str, output: ToolOutput) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": call_id,
        "content": output.content,
    }
    if output.is_error:
        block["is_error"] = True
    return block


def append_user_content(messages: list[dict[str, Any]], blocks: list[dict[str, Any]]) -> None:
    """Add blocks as a user turn, merging into a trailing user message.

    Consecutive user messages are legal, but one message keeps the history
    tidy: tool results and the user's next words travel together.
    """
    if messages and messages[-1]["role"] == "user":
        last = messages[-1]
        if isinstance(last["content"], str):
            last["content"] = [{"type": "text", "text": last["content"]}]
        last["content"].extend(blocks)
    else:
        messages.append({"role": "user", "content": list(blocks)})


def unanswered_tool_calls(messages: list[dict[str, Any]]) -> list[ToolCall]:
    """Tool calls in the last assistant message that have no result yet."""
    if not messages or messages[-1]["role"] != "assistant":
        return []
    return tool_calls_in(messages[-1])


def text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if b.get("type") == "text")


def with_cache_breakpoint(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of `messages` whose last block carries `cache_control`.

    The breakpoint moves forward each request, so every request reads the
    prefix the previous one wrote. The stored history is never modified.
    """
    if not messages:
        return messages
    last = dict(messages[-1])
    content = last["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    else:
        content = list(content)
    for i in range(len(content) - 1, -1, -1):
        if content[i].get("type") in ("text", "tool_result", "image", "document"):
            content[i] = {**content[i], "cache_control": {"type": "ephemeral"}}
            break
    last["content"] = content
    return [*messages[:-1], last]
