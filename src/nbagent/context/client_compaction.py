"""Client-side compaction: the pieces that rewrite a history, without any I/O.

Compaction keeps the recent part of the conversation as it is and replaces what
came before it:

1. Large old tool outputs and images go first: they become short placeholders.
   When that alone brings the conversation well under the window, it is all
   that happens (no request, nothing summarised).
2. Otherwise one summarisation request is sent: the exact request the next turn
   would send (same system, tools, messages and cache breakpoints, so it reads
   the cached prefix) plus a final user message asking for a summary. The older
   messages are replaced by that summary.

The split between old and recent falls only where no tool_use/tool_result pair
is cut in two, so the compacted history is valid to send. The orchestration
(the request, its usage, the notices) is `SessionContext.compact`.
"""

from __future__ import annotations

import re
from typing import Any

from .estimate import block_tokens, blocks_of, messages_tokens

# Tool outputs (and documents) at least this big are replaced; smaller ones cost
# little and often carry the numbers the conversation refers to.
PRUNE_MIN_TOKENS = 400
# After compaction the kept recent messages take at most this share of the window.
KEEP_SHARE = 0.25
# Pruning alone is enough when it brings the conversation under this share.
PRUNED_ENOUGH_SHARE = 0.5

SUMMARY_PROMPT = (
    "The conversation is about to be compacted to fit the context window: the earlier "
    "messages will be replaced by your summary, and only the most recent exchanges are "
    "kept as they are. Do not call any tools now. Write the summary you will continue "
    "from: the user's goals and requests; what was done (cells, code, files, variables "
    "and what they hold); key results, numbers and errors; decisions and open questions; "
    "and what to do next. Be specific and concise, in Markdown."
)
SUMMARY_HEADER = "Summary of the earlier conversation (compacted to fit the context window):"

_TOO_LONG = re.compile(r"(\d[\d,]*)\s*tokens?\s*>\s*(\d[\d,]*)")


def is_prompt_too_long(exc: BaseException) -> bool:
    """An API refusal that a shorter conversation fixes: `prompt is too long` (400), or
    a request body over the API's size limit (413)."""
    import anthropic

    if isinstance(exc, anthropic.APIStatusError) and exc.status_code == 413:
        return True
    return isinstance(exc, anthropic.BadRequestError) and "prompt is too long" in str(exc).lower()


def too_long_counts(exc: BaseException) -> tuple[int, int] | None:
    """(tokens sent, maximum) from "prompt is too long: 208310 tokens > 200000 maximum"."""
    found = _TOO_LONG.search(str(exc))
    if found is None:
        return None
    return int(found[1].replace(",", "")), int(found[2].replace(",", ""))


def _is_boundary(messages: list[dict[str, Any]], index: int) -> bool:
    """Whether the history can be cut before `index` without splitting a tool call
    from its result: an assistant message starts there, or a user message that
    answers no tool call."""
    message = messages[index]
    if message["role"] == "assistant":
        return True
    return not any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks_of(message)
    )


def split_index(messages: list[dict[str, Any]], start: int, keep_tokens: int) -> int:
    """Where the kept recent part begins: the earliest boundary after `start` whose tail
    fits `keep_tokens`, else the latest boundary (the last exchange is always kept).
    `start` itself when nothing before the end can be replaced."""
    boundaries = [i for i in range(start + 1, len(messages)) if _is_boundary(messages, i)]
    if not boundaries:
        return start
    tail = 0
    fitting = None
    for i in range(len(messages) - 1, start, -1):
        tail += messages_tokens([messages[i]])
        if tail > keep_tokens:
            break
        if _is_boundary(messages, i):
            fitting = i
    return fitting if fitting is not None else boundaries[-1]


def _placeholder(tokens: int, what: str) -> str:
    return f"[{what} removed to save context: about {tokens:,} tokens]"


def _prune_block(block: Any, min_tokens: int) -> tuple[Any, int]:
    """A block with its large outputs and images replaced, and how many were."""
    if not isinstance(block, dict):
        return block, 0
    kind = block.get("type")
    if kind == "image":
        return {"type": "text", "text": "[image removed to save context]"}, 1
    if kind == "document":
        return {"type": "text", "text": _placeholder(block_tokens(block), "document")}, 1
    if kind != "tool_result":
        return block, 0
    content = block.get("content")
    tokens = block_tokens(content)
    if tokens >= min_tokens:
        return {**block, "content": _placeholder(tokens, "tool output")}, 1
    if isinstance(content, list) and any(
        isinstance(c, dict) and c.get("type") == "image" for c in content
    ):
        pruned = [_prune_block(c, min_tokens)[0] for c in content]
        return {**block, "content": pruned}, sum(
            1 for c in content if isinstance(c, dict) and c.get("type") == "image"
        )
    return block, 0


def prune(
    messages: list[dict[str, Any]], end: int, min_tokens: int = PRUNE_MIN_TOKENS
) -> tuple[list[dict[str, Any]], int]:
    """A copy of `messages` whose first `end` messages have their large tool outputs,
    documents and images replaced by short placeholders; and how many were replaced.
    Messages that change are copied; the others are shared."""
    out = list(messages)
    replaced = 0
    for m in range(min(end, len(messages))):
        message = messages[m]
        if message["role"] != "user" or isinstance(message["content"], str):
            continue
        blocks = []
        count = 0
        for block in message["content"]:
            new, n = _prune_block(block, min_tokens)
            blocks.append(new)
            count += n
        if count:
            out[m] = {**message, "content": blocks}
            replaced += count
    return out, replaced


def drop_oldest(messages: list[dict[str, Any]], end: int, tokens_to_drop: int) -> int:
    """How many of the first `end` messages to drop to shed `tokens_to_drop`, cutting at
    a boundary (for a summary request that would not fit even with placeholders)."""
    shed = 0
    for i in range(1, end):
        shed += messages_tokens([messages[i - 1]])
        if shed >= tokens_to_drop and _is_boundary(messages, i):
            return i
    return max(0, end - 1)


def summary_request(
    params: dict[str, Any], messages: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The summarisation request: `params` as the next request would send them, plus a
    final user text asking for the summary (or with `messages` instead, when the full
    conversation does not fit). Beta compaction edits are left out, so the summary is not
    compacted itself, and a forced tool choice, since no tool may run."""
    out = {k: v for k, v in params.items() if k not in ("context_management", "betas")}
    choice = out.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        del out["tool_choice"]
    sent = list(messages if messages is not None else params["messages"])
    ask = {"type": "text", "text": SUMMARY_PROMPT}
    if sent and sent[-1]["role"] == "user":
        sent[-1] = {**sent[-1], "content": [*blocks_of(sent[-1]), ask]}
    else:
        sent.append({"role": "user", "content": [ask]})
    out["messages"] = sent
    return out


def summary_of(content: list[dict[str, Any]]) -> str | None:
    """The text of a summarisation response, or None when it wrote none."""
    text = "\n\n".join(
        b["text"].strip() for b in content if b.get("type") == "text" and b.get("text", "").strip()
    )
    return text or None


def with_summary(summary: str, recent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The compacted history: the summary as the first user message, then `recent`."""
    block = {"type": "text", "text": f"{SUMMARY_HEADER}\n\n{summary}"}
    if recent and recent[0]["role"] == "user":
        return [{**recent[0], "content": [block, *blocks_of(recent[0])]}, *recent[1:]]
    return [{"role": "user", "content": [block]}, *recent]
