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
    if kind == "compaction":
        # Sent back exactly as it came (summary, opaque fields, signature, even a null
        # content): every field the API set, nothing added.
        return block.to_dict(mode="json", exclude_unset=True)
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
    return with_cache_breakpoints(messages, limit=1)


# Blocks the API refuses a `cache_control` on.
_UNMARKABLE = frozenset({"thinking", "redacted_thinking"})


def request_ends(messages: list[dict[str, Any]], limit: int) -> list[int]:
    """Indexes of the messages that ended this request and the requests before it.

    The history grows by appending: each request ends where the previous one ended,
    plus the assistant's answer and what came after it. So the message before each
    assistant message closed an earlier request; the newest `limit` ends, newest first.
    """
    if not messages or limit <= 0:
        return []
    ends = [len(messages) - 1]
    for k in range(len(messages) - 1, 0, -1):
        if len(ends) >= limit:
            break
        if messages[k]["role"] == "assistant" and k - 1 < ends[-1]:
            ends.append(k - 1)
    return ends


def with_cache_breakpoints(messages: list[dict[str, Any]], limit: int = 3) -> list[dict[str, Any]]:
    """A copy of `messages` with `cache_control` on the last block of up to `limit` request ends.

    The moving end (this request's last block) writes the conversation to the cache.
    The previous request's end is marked too: the API looks back at most 20 blocks
    from a breakpoint for a cached prefix, and a round of parallel tool calls adds
    more than that, so the previous end must be a breakpoint of its own to be read.
    The end before it is a fallback when the previous request wrote nothing. The
    system prompt takes the API's fourth breakpoint. The stored history is never
    modified: only the marked messages are copied.
    """
    out = list(messages)
    for index in request_ends(messages, limit):
        marked = _mark_last_block(messages[index])
        if marked is not None:
            out[index] = marked
    return out


def _mark_last_block(message: dict[str, Any]) -> dict[str, Any] | None:
    content = message["content"]
    if isinstance(content, str):
        if not content:
            return None
        content = [{"type": "text", "text": content}]
    else:
        content = list(content)
    for i in range(len(content) - 1, -1, -1):
        block = content[i]
        if block.get("type") in _UNMARKABLE or (block.get("type") == "text" and not block["text"]):
            continue
        content[i] = {**block, "cache_control": {"type": "ephemeral"}}
        return {**message, "content": content}
    return None


# Conversation breakpoints a request uses; the system prompt takes the API's fourth.
MESSAGE_BREAKPOINTS = 3


def request_messages(messages: list[dict[str, Any]], prompt_caching: bool) -> list[dict[str, Any]]:
    """The messages a request sends: from the last compaction block on, with breakpoints."""
    view = since_last_compaction(messages)
    return with_cache_breakpoints(view, MESSAGE_BREAKPOINTS) if prompt_caching else view


def since_last_compaction(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages the API reads: from the last server compaction block on.

    The API drops everything before a compaction block, so it is not sent either;
    the block's own message keeps only the block and what follows it. The stored
    history keeps the whole conversation.
    """
    for m in range(len(messages) - 1, -1, -1):
        content = messages[m]["content"]
        if isinstance(content, str) or messages[m]["role"] != "assistant":
            continue
        for b in range(len(content) - 1, -1, -1):
            if content[b].get("type") == "compaction":
                first = messages[m] if b == 0 else {**messages[m], "content": content[b:]}
                return [first, *messages[m + 1 :]]
    return messages
