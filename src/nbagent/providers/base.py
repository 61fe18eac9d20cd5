"""The provider protocol the loop talks to.

A provider streams one Messages API request: it yields loop events (text,
thinking and tool-input deltas) as they arrive and returns the final
`anthropic.types.Message`. Errors are the SDK's typed exceptions.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Protocol

from ..events import Event

if TYPE_CHECKING:
    from anthropic.types import Message


class Provider(Protocol):
    def stream(self, params: dict[str, Any]) -> Generator[Event, None, Message]:
        """Send `params` (messages.create keyword arguments) and stream the answer."""
        ...
