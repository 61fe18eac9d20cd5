"""How big the next request is, measured before it is sent, with no API call.

The API says how many input tokens each request had (uncached + cache writes +
cache reads). The next request is that one plus what was appended since (the
answer, tool results, the next prompt), so only the new blocks are estimated:
text at 4 bytes a token, an image at a fixed cost. Nothing is downloaded and no
tokenizer runs. When there is no measured request to start from (the first
request, after a compaction, a reset or a restored history), the whole request is
estimated the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..history import since_last_compaction

IMAGE_TOKENS = 1_600  # a full-size image (about 1.15 megapixels), as the API counts it
BYTES_PER_TOKEN = 4
# Keys that are structure, not text the model reads.
_STRUCTURAL = frozenset({"type", "role", "id", "tool_use_id", "cache_control", "signature"})


def _measure(value: Any) -> tuple[int, int]:
    """(characters of text, images) in a block or any value inside one."""
    if isinstance(value, str):
        return len(value), 0
    if isinstance(value, dict):
        if value.get("type") == "image":
            return 0, 1
        chars = images = 0
        for key, item in value.items():
            if key not in _STRUCTURAL:
                c, i = _measure(item)
                chars, images = chars + c, images + i
        return chars, images
    if isinstance(value, (list, tuple)):
        chars = images = 0
        for item in value:
            c, i = _measure(item)
            chars, images = chars + c, images + i
        return chars, images
    return 0, 0


def block_tokens(block: Any) -> int:
    """Estimated tokens of one content block, tool definition or system block."""
    chars, images = _measure(block)
    return chars // BYTES_PER_TOKEN + images * IMAGE_TOKENS


def blocks_of(message: dict[str, Any]) -> list[Any]:
    content = message["content"]
    return [content] if isinstance(content, str) else list(content)


def messages_tokens(messages: Iterable[dict[str, Any]]) -> int:
    return sum(block_tokens(b) for m in messages for b in blocks_of(m))


def fixed_tokens(params: dict[str, Any]) -> int:
    """Tokens of what precedes the conversation: tool definitions and system prompt."""
    system = params.get("system") or []
    system_blocks = [system] if isinstance(system, str) else list(system)
    return sum(block_tokens(t) for t in params.get("tools") or []) + sum(
        block_tokens(b) for b in system_blocks
    )


def request_tokens(params: dict[str, Any]) -> int:
    """A whole request, estimated (the messages from the last compaction block on)."""
    return fixed_tokens(params) + messages_tokens(since_last_compaction(params["messages"]))


# --------------------------------------------------------------------------- the meter


@dataclass(frozen=True)
class _Basis:
    """Where the history stood when a request was sent, to find what came after it."""

    message_ids: tuple[int, ...]  # id() of each message dict, in order
    last_blocks: int  # blocks in the last message then (a user message can grow)
    fixed: int  # tools + system tokens then


@dataclass(frozen=True)
class Measurement:
    tokens: int  # the next request's input, estimated
    measured: int | None  # the last request's input as the API counted it, if it counts
    added: int  # estimated tokens appended since that request


class ContextMeter:
    """Remembers the last request's size, as the API reported it, across turns.

    `expect` is called with each request before it is sent, `settle` with its
    response; `measure` then estimates the next request from them.
    """

    def __init__(self) -> None:
        self._pending: _Basis | None = None
        self._basis: _Basis | None = None
        self._measured: int | None = None
        self.last: Measurement | None = None  # the latest `measure`, for `%agent context`
        # Size right after the last compaction: one that could not get under the trigger
        # (a huge prompt) is not repeated before the conversation grows again.
        self.floor: int | None = None

    def expect(self, history: Sequence[dict[str, Any]], params: dict[str, Any]) -> None:
        """The request about to go out was built from `history` as it is now."""
        self._pending = _Basis(
            tuple(id(m) for m in history),
            len(blocks_of(history[-1])) if history else 0,
            fixed_tokens(params),
        )

    def settle(self, input_total: int, compacted: bool = False) -> None:
        """The API counted `input_total` input tokens for the expected request.

        After a server compaction the next request no longer starts where this one
        did, so it is estimated whole.
        """
        if self._pending is None or compacted:
            self.forget()
            return
        self._basis, self._measured = self._pending, input_total
        self._pending = None

    def forget(self) -> None:
        self._pending = self._basis = self._measured = None

    def measure(self, history: Sequence[dict[str, Any]], params: dict[str, Any]) -> Measurement:
        added = self._added_since_basis(history, params)
        if added is None or self._measured is None:
            result = Measurement(request_tokens(params), None, 0)
        else:
            result = Measurement(self._measured + added, self._measured, added)
        self.last = result
        return result

    def _added_since_basis(
        self, history: Sequence[dict[str, Any]], params: dict[str, Any]
    ) -> int | None:
        """Tokens appended since the measured request; None if the history was rewritten."""
        basis = self._basis
        if basis is None or not basis.message_ids:
            return None
        n = len(basis.message_ids)
        if len(history) < n or any(id(history[i]) != basis.message_ids[i] for i in range(n)):
            return None  # compacted, reset or restored: not the conversation measured
        grown = blocks_of(history[n - 1])[basis.last_blocks :]
        new = sum(block_tokens(b) for b in grown) + messages_tokens(history[n:])
        return new + fixed_tokens(params) - basis.fixed
