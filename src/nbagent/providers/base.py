"""The provider boundary: what the loop needs from any model API.

A provider takes one request in nbagent's canonical form (the Messages API's
`messages.create` keyword arguments: model, max_tokens, system, messages, tools,
tool_choice, thinking, output_config, ...), translates it for its API, streams
loop events (text, thinking and tool-input deltas) as they arrive, and returns a
`ModelResponse`: the content as canonical blocks (what goes into the history),
the stop reason, the usage counts and the model. Errors are the provider SDK's
own typed exceptions (the README lists them per provider).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..events import Event


@dataclass
class ModelResponse:
    """One finished (or cut-short) model response, provider-neutral."""

    content: list[dict[str, Any]]  # canonical blocks: text, thinking, tool_use, ...
    stop_reason: str
    model: str
    input_tokens: int = 0  # uncached input
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    raw: Any = field(default=None, repr=False)  # the provider's own final object


class Provider(Protocol):
    def stream(self, params: dict[str, Any]) -> Generator[Event, None, ModelResponse]:
        """Send `params` (canonical request) and stream the answer."""
        ...


def take_partial(provider: Provider) -> ModelResponse | None:
    """What the provider's last failed stream generated (billed all the same), once."""
    take = getattr(provider, "take_partial", None)
    return take() if take is not None else None
