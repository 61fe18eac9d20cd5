"""Typed events yielded by the agent loop.

The loop knows nothing about display: every surface (cell output, widget panel,
JupyterLab sidebar, terminal REPL, Python API) renders these same events.
Events are plain dataclasses so they serialise to JSON for the kernel-frontend
comm with `event_to_dict`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

PermissionDecision = Literal["allow", "deny", "always"]


@dataclass(frozen=True)
class ToolCall:
    """One `tool_use` block the model asked for."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ToolOutput:
    """What a tool returned, as sent back to the model.

    `content` is a string or a list of Messages API content blocks (text and
    image blocks); `summary` is a one-line description for compact renderers.
    """

    content: str | list[dict[str, Any]]
    is_error: bool = False
    summary: str = ""

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(b.get("text", "") for b in self.content if b.get("type") == "text")

    def images(self) -> list[dict[str, Any]]:
        if isinstance(self.content, str):
            return []
        return [b for b in self.content if b.get("type") == "image"]


@dataclass(frozen=True)
class TurnStart:
    prompt: str
    type: Literal["turn_start"] = "turn_start"


@dataclass(frozen=True)
class TextDelta:
    text: str
    type: Literal["text_delta"] = "text_delta"


@dataclass(frozen=True)
class ThinkingDelta:
    text: str
    type: Literal["thinking_delta"] = "thinking_delta"


@dataclass(frozen=True)
class ToolCallStart:
    """The model began a tool call; its input streams in `ToolInputDelta`s."""

    id: str
    name: str
    type: Literal["tool_call_start"] = "tool_call_start"


@dataclass(frozen=True)
class ToolInputDelta:
    id: str
    partial_json: str
    type: Literal["tool_input_delta"] = "tool_input_delta"


@dataclass(frozen=True)
class ToolCallEvent:
    """A complete tool call, about to be checked and run."""

    call: ToolCall
    type: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True)
class ToolResultEvent:
    call: ToolCall
    output: ToolOutput
    elapsed: float = 0.0
    type: Literal["tool_result"] = "tool_result"


@dataclass(frozen=True)
class ApprovalRequest:
    """The loop stopped and waits for allow / deny / always on this call."""

    call: ToolCall
    category: str
    type: Literal["approval_request"] = "approval_request"


@dataclass(frozen=True)
class Notice:
    """A message for the user that is not model text (notify tool, warnings)."""

    text: str
    level: Literal["info", "warning"] = "info"
    attachments: tuple[str, ...] = ()
    type: Literal["notice"] = "notice"


@dataclass(frozen=True)
class Usage:
    """Token usage of one or more Messages API requests, with its cost in USD.

    `input_tokens` is the API's field: uncached input only. The input a user
    means (and every surface shows) is `input_total`. `cost_usd` is None when
    the price of the model is not known, and a sum with an unknown part is
    unknown: a partial figure would read as the whole cost.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float | None = 0.0
    model: str = ""
    type: Literal["usage"] = "usage"

    def __add__(self, other: Usage) -> Usage:
        cost = (
            None
            if self.cost_usd is None or other.cost_usd is None
            else self.cost_usd + other.cost_usd
        )
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens
            + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            cost_usd=cost,
            model=other.model or self.model,
        )

    @property
    def input_total(self) -> int:
        """Every input token: uncached, written to the cache and read from it."""
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    @property
    def cached_share(self) -> float:
        """The share (0..1) of `input_total` read from the cache; 0 with no input."""
        total = self.input_total
        return self.cache_read_input_tokens / total if total else 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_total + self.output_tokens


@dataclass(frozen=True)
class ErrorEvent:
    """A failure that ended the turn (API error, configuration problem)."""

    message: str
    exception: BaseException | None = field(default=None, compare=False, repr=False)
    type: Literal["error"] = "error"


StopReason = str  # the API's stop reasons plus "max_turns", "interrupted", "error", "awaiting_*"


@dataclass(frozen=True)
class TurnEnd:
    stop_reason: StopReason
    message: str = ""
    type: Literal["turn_end"] = "turn_end"


Event = (
    TurnStart
    | TextDelta
    | ThinkingDelta
    | ToolCallStart
    | ToolInputDelta
    | ToolCallEvent
    | ToolResultEvent
    | ApprovalRequest
    | Notice
    | Usage
    | ErrorEvent
    | TurnEnd
)


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-safe dict of an event (the exception of an ErrorEvent is dropped)."""
    data = dataclasses.asdict(event)
    data.pop("exception", None)
    return data
