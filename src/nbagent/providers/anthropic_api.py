"""The Anthropic Messages API through the official SDK, always streaming."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from ..events import Event, TextDelta, ThinkingDelta, ToolCallStart, ToolInputDelta
from ..history import block_to_param
from .base import ModelResponse

if TYPE_CHECKING:
    import anthropic


class AnthropicProvider:
    """Streams requests with `client.messages.stream`; the SDK does the retries."""

    def __init__(
        self,
        *,
        api_key: str | None,
        auth_token: str | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
        timeout: float = 600.0,
    ) -> None:
        self._options: dict[str, Any] = {
            "api_key": api_key,
            "auth_token": auth_token,
            "base_url": base_url,
            "max_retries": max_retries,
            "timeout": timeout,
        }
        self._client: anthropic.Anthropic | None = None
        self._partial: ModelResponse | None = None

    @property
    def client(self) -> anthropic.Anthropic:
        # Imported on first use: `import anthropic` costs about a second, which
        # `%load_ext nbagent` must not pay.
        if self._client is None:
            import anthropic

            self._client = anthropic.Anthropic(**self._options)
        return self._client

    def stream(self, params: dict[str, Any]) -> Generator[Event, None, ModelResponse]:
        try:
            return (yield from self._stream(params))
        except _transport_errors() as exc:
            # The SDK retries failed connections, but a stream cut mid-body
            # surfaces as the HTTP library's own error; give callers the SDK's
            # typed connection error instead.
            import anthropic

            raise anthropic.APIConnectionError(
                message=f"The response stream was cut off: {exc}",
                request=_request_of(exc, self._stand_in_request(params)),
            ) from exc

    def _stand_in_request(self, params: dict[str, Any]) -> Any:
        """What an error names when the HTTP library kept no request: endpoint and model."""
        import httpx2

        url = self.client.base_url.join("v1/messages")
        return httpx2.Request("POST", str(url), json={"model": params.get("model")})

    def _stream(self, params: dict[str, Any]) -> Generator[Event, None, ModelResponse]:
        self._partial = None
        params = dict(params)
        betas = params.pop("betas", None)
        if betas or "context_management" in params:
            # Beta features (server-side compaction) go through the SDK's beta client.
            manager: Any = self.client.beta.messages.stream(**params, betas=betas or [])
        else:
            manager = self.client.messages.stream(**params)
        with manager as stream:
            try:
                yield from _loop_events(stream)
            except BaseException:
                # Interrupted or cut off: what was generated is still billed, so
                # keep the snapshot for `take_partial`.
                try:
                    self._partial = to_response(stream.current_message_snapshot)
                except Exception:  # no message_start yet: nothing was generated
                    self._partial = None
                raise
            return to_response(stream.get_final_message())

    def take_partial(self) -> ModelResponse | None:
        """The message so far of the last stream that failed (for its usage), once."""
        partial, self._partial = self._partial, None
        return partial

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def to_response(message: Any) -> ModelResponse:
    """An SDK `Message` (or beta message) as the loop's provider-neutral response."""
    u = message.usage
    return ModelResponse(
        content=[block_to_param(b) for b in message.content],
        stop_reason=message.stop_reason or "end_turn",
        model=getattr(message, "model", "") or "",
        input_tokens=u.input_tokens or 0,
        output_tokens=u.output_tokens or 0,
        cache_creation_input_tokens=getattr(u, "cache_creation_input_tokens", 0) or 0,
        cache_read_input_tokens=getattr(u, "cache_read_input_tokens", 0) or 0,
        raw=message,
    )


# What the SDK raises when an event's data is not what the API sends: bad JSON
# (json.JSONDecodeError, a ValueError, as is pydantic's ValidationError), a
# block index out of range, a missing field, a non-object, events out of order.
_MALFORMED_EVENT_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    RuntimeError,
)


def _sdk_events(stream: Any) -> Generator[Any, None, None]:
    """The SDK's stream events; one it cannot decode ends the stream as a cut would,
    with the SDK's typed connection error (the partial message is kept by the caller)."""
    iterator = iter(stream)
    while True:
        try:
            event = next(iterator)
        except StopIteration:
            return
        except _MALFORMED_EVENT_ERRORS as exc:
            import anthropic

            raise anthropic.APIConnectionError(
                message=f"The response stream had a malformed event ({type(exc).__name__}: {exc})",
                request=_request_of(stream.response),
            ) from exc
        yield event


def _loop_events(stream: Any) -> Generator[Event, None, None]:
    """The SDK's stream events as loop events (deltas and tool-call starts).

    Matched on the events' `type`, not their classes: the beta client (server-side
    compaction) streams its own `Beta*` event classes with the same shapes.
    """
    for event in _sdk_events(stream):
        kind = getattr(event, "type", None)
        if kind == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                yield TextDelta(delta.text)
            elif delta.type == "thinking_delta":
                yield ThinkingDelta(delta.thinking)
            elif delta.type == "input_json_delta":
                block = stream.current_message_snapshot.content[event.index]
                yield ToolInputDelta(getattr(block, "id", ""), delta.partial_json)
        elif kind == "content_block_start" and event.content_block.type == "tool_use":
            yield ToolCallStart(event.content_block.id, event.content_block.name)


def _transport_errors() -> tuple[type[BaseException], ...]:
    import importlib

    found: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):  # the SDK moved to httpx2; older SDKs use httpx
        try:
            found.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _request_of(source: object, stand_in: Any = None) -> Any:
    """The request of an HTTP error or response, or a stand-in when it has none."""
    try:
        return source.request  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        if stand_in is not None:
            return stand_in
        import httpx2

        return httpx2.Request("POST", "/v1/messages")
