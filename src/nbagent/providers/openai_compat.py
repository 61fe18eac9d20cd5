"""OpenAI-compatible Chat Completions endpoints through the official `openai` SDK.

One provider covers OpenAI, OpenRouter, Gemini's OpenAI-compatible endpoint, Ollama, vLLM,
llama.cpp and LM Studio: they differ only in base URL, key and a few habits (the name of
the reasoning field, whether images are taken, `max_tokens` or `max_completion_tokens`).

The canonical request (the Messages API's create arguments) is translated to
`chat.completions.create(stream=True)`; the streamed chunks become the loop's events, and
the finished stream a `ModelResponse` whose content is canonical blocks (text, tool_use),
so the history stays a valid Messages API history whichever provider wrote it. Reasoning
is streamed as thinking but not kept: it carries no signature the Messages API would take
back. Errors are the `openai` SDK's typed exceptions; the SDK does the retries.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..events import Event, TextDelta, ThinkingDelta, ToolCallStart, ToolInputDelta
from ..models import model_info
from .base import ModelResponse
from .error_text import (
    api_message,
    connection_reason,
    endpoint_of,
    never_connected,
    sentences,
)

if TYPE_CHECKING:
    import openai

STOP_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}
# Effort levels `reasoning_effort` takes (OpenAI and Gemini); others are not sent.
REASONING_EFFORTS = ("minimal", "low", "medium", "high")
IMAGE_FALLBACK = "[image not sent: this model endpoint does not take images]"


@dataclass(frozen=True)
class Endpoint:
    """Who the provider talks to, for messages: its name, and the variables that set it."""

    name: str = "openai"  # the `provider:` prefix
    label: str = "OpenAI"
    key_env: str | None = "OPENAI_API_KEY"
    url_env: str | None = "OPENAI_BASE_URL"
    local: bool = False  # a server on the user's machine (Ollama, vLLM, ...)
    start_hint: str = ""  # how to start the local server


class OpenAICompatProvider:
    """Streams canonical requests through `client.chat.completions.create(stream=True)`."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        endpoint: Endpoint | None = None,
        max_retries: int = 2,
        timeout: float = 600.0,
        accepts_images: bool = True,
        token_param: str = "max_completion_tokens",
        missing_key: str | None = None,
        default_headers: dict[str, str] | None = None,
    ) -> None:
        self.endpoint = endpoint or Endpoint()
        self.base_url = base_url
        self.accepts_images = accepts_images
        self.token_param = token_param
        # Set when the key is missing: the first request raises it as a ConfigError, so
        # the turn ends with one line (as a missing ANTHROPIC_API_KEY does).
        self.missing_key = missing_key
        self._options: dict[str, Any] = {
            # The SDK refuses to start without a key; local servers take any.
            "api_key": api_key or "not-needed",
            "base_url": base_url,
            "max_retries": max_retries,
            "timeout": timeout,
            "default_headers": default_headers,
        }
        self._client: openai.OpenAI | None = None
        self._partial: ModelResponse | None = None
        self._reachable = False

    @property
    def client(self) -> openai.OpenAI:
        # Imported on first use: `import openai` takes over a second, which
        # `%load_ext nbagent` must not pay (nor any Anthropic-only session).
        if self._client is None:
            import openai

            self._client = openai.OpenAI(**self._options)
        return self._client

    def stream(self, params: dict[str, Any]) -> Generator[Event, None, ModelResponse]:
        self._partial = None
        if self.missing_key:
            raise ConfigError(self.missing_key)
        if self.endpoint.local and not self._reachable:
            self._check_reachable()
        import openai

        request = to_chat_request(
            params,
            model=strip_provider_prefix(str(params.get("model", "")), self.endpoint.name),
            accepts_images=self.accepts_images,
            token_param=self.token_param,
        )
        state = _StreamState(request["model"])
        try:
            with self.client.chat.completions.create(**request) as chunks:
                yield from state.consume(_sdk_chunks(chunks))
        except openai.APIConnectionError as exc:
            if self.endpoint.local and never_connected(exc):
                self._reachable = False
                raise ConfigError(self._unreachable_message()) from exc
            self._partial = state.response(partial=True)
            _tag(exc, self.endpoint)
            raise
        except openai.APIError as exc:
            self._partial = state.response(partial=True)
            _tag(exc, self.endpoint)
            raise
        except BaseException:
            # Interrupted (the loop closed this generator) or failed: what was generated
            # is billed all the same; `take_partial` hands it to the loop.
            self._partial = state.response(partial=True)
            raise
        return state.response()

    def take_partial(self) -> ModelResponse | None:
        """The response so far of the last stream that failed (for its usage), once."""
        partial, self._partial = self._partial, None
        return partial

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # -- local servers ----------------------------------------------------------

    def _check_reachable(self) -> None:
        """A local server that is not running is one clear line, at once (the SDK would
        retry the refused connection with back-off first)."""
        parts = urlsplit(self.base_url or "")
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((host, port), timeout=2.0):
                pass
        except OSError:
            raise ConfigError(self._unreachable_message()) from None
        self._reachable = True

    def _unreachable_message(self) -> str:
        where = self.base_url or "its default address"
        hint = f": {self.endpoint.start_hint}" if self.endpoint.start_hint else ""
        return f"{self.endpoint.label} is not reachable at {where}{hint}."


def strip_provider_prefix(model: str, provider: str) -> str:
    """`openai:gpt-5.1` -> `gpt-5.1` for the openai provider; other names unchanged."""
    prefix = f"{provider}:"
    return model[len(prefix) :] if model.lower().startswith(prefix) else model


def _tag(exc: BaseException, endpoint: Endpoint) -> None:
    """Remember which provider raised, so the one-line message names its variables."""
    try:
        exc.nbagent_endpoint = endpoint  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - exceptions take attributes
        pass


# --------------------------------------------------------------------------- request


def to_chat_request(
    params: dict[str, Any],
    *,
    model: str,
    accepts_images: bool = True,
    token_param: str = "max_completion_tokens",
) -> dict[str, Any]:
    """The canonical (Messages API) request as `chat.completions.create` arguments."""
    messages: list[dict[str, Any]] = []
    system = system_text(params.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for message in params.get("messages", []):
        messages.extend(_to_chat_messages(message, accepts_images))
    request: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    max_tokens = params.get("max_tokens")
    if max_tokens:
        # The model table's output limit: a larger request is a 400 on most endpoints.
        request[token_param] = min(int(max_tokens), model_info(model).max_output_tokens)
    tools = [_to_chat_tool(t) for t in params.get("tools") or [] if "input_schema" in t]
    choice = params.get("tool_choice")
    if tools:
        request["tools"] = tools
        if choice:
            request["tool_choice"] = _to_chat_tool_choice(choice)
            if choice.get("disable_parallel_tool_use"):
                request["parallel_tool_calls"] = False
    effort = (params.get("output_config") or {}).get("effort")
    if effort in REASONING_EFFORTS:
        request["reasoning_effort"] = effort
    for key, chat_key in (("temperature", "temperature"), ("top_p", "top_p")):
        if params.get(key) is not None:
            request[chat_key] = params[key]
    if params.get("stop_sequences"):
        request["stop"] = list(params["stop_sequences"])[:4]  # the API takes at most 4
    return request


def system_text(system: Any) -> str:
    """A system prompt given as a string or as text blocks, as one string."""
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    return "\n\n".join(b.get("text", "") for b in system if b.get("type") == "text")


def _to_chat_tool(tool: dict[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _to_chat_tool_choice(choice: dict[str, Any]) -> Any:
    kind = choice.get("type")
    if kind == "any":
        return "required"
    if kind == "tool":
        return {"type": "function", "function": {"name": choice["name"]}}
    if kind == "none":
        return "none"
    return "auto"


def _to_chat_messages(message: dict[str, Any], accepts_images: bool) -> list[dict[str, Any]]:
    role, content = message["role"], message["content"]
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if role == "assistant":
        return [_assistant_message(content)]
    # A user message: its tool results become `tool` messages, which must come right
    # after the assistant's tool calls; anything else follows as one user message.
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    result_images: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type")
        if kind == "tool_result":
            text, images = _tool_result_content(block)
            if images and not accepts_images:
                text = f"{text}\n{IMAGE_FALLBACK}" if text else IMAGE_FALLBACK
            elif images:
                # Tool messages take text only: the images follow in a user message.
                result_images += images
                note = f"[{len(images)} image(s) follow in the next message]"
                text = f"{text}\n{note}" if text else note
            out.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
        elif kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append(
                _image_part(block) if accepts_images else {"type": "text", "text": IMAGE_FALLBACK}
            )
        elif kind == "document":
            parts.append({"type": "text", "text": _document_text(block)})
    if result_images:
        parts = [
            {"type": "text", "text": "Images returned by the tool calls above:"},
            *[_image_part(b) for b in result_images],
            *parts,
        ]
    if parts:
        if all(p["type"] == "text" for p in parts):
            out.append({"role": "user", "content": "\n\n".join(p["text"] for p in parts)})
        else:
            out.append({"role": "user", "content": parts})
    return out


def _assistant_message(content: list[dict[str, Any]]) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {
                        "name": block["name"],
                        "arguments": json.dumps(block.get("input") or {}),
                    },
                }
            )
        # thinking (signed for Anthropic only) and server-tool blocks are not sent
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_result_content(block: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    content = block.get("content", "")
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        text = content
    else:
        texts = []
        for part in content or []:
            if part.get("type") == "text":
                texts.append(part.get("text", ""))
            elif part.get("type") == "image":
                images.append(part)
            elif part.get("type") == "document":
                texts.append(_document_text(part))
        text = "\n".join(texts)
    if block.get("is_error") and not text.lower().startswith("error"):
        # Chat Completions has no error flag on a tool message: say it in the text.
        text = f"Error: {text}"
    return text, images


def _image_part(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "url":
        url = source.get("url", "")
    else:
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    return {"type": "image_url", "image_url": {"url": url}}


def _document_text(block: dict[str, Any]) -> str:
    source = block.get("source") or {}
    if source.get("type") == "text":
        return str(source.get("data", ""))
    return "[document not sent: this model endpoint takes text and images only]"


# --------------------------------------------------------------------------- response


# What an undecodable chunk raises inside the SDK (bad JSON is a ValueError).
_MALFORMED_CHUNK_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
)


def _sdk_chunks(stream: Any) -> Iterator[Any]:
    """The SDK's chunks; one it cannot decode ends the stream as a cut would, with the
    SDK's typed connection error."""
    iterator = iter(stream)
    while True:
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        except _MALFORMED_CHUNK_ERRORS as exc:
            import openai

            raise openai.APIConnectionError(
                message=f"The response stream had a malformed chunk ({type(exc).__name__}: {exc})",
                request=stream.response.request,
            ) from exc
        yield chunk


@dataclass
class _Call:
    id: str
    name: str
    arguments: list[str]
    started: bool = False


class _StreamState:
    """Accumulates streamed chunks into loop events and, at the end, a ModelResponse."""

    def __init__(self, model: str) -> None:
        self.requested_model = model
        self.model = ""
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.calls: list[_Call] = []
        self.by_index: dict[int, _Call] = {}
        self.finish: str | None = None
        self.usage: Any = None
        self.last: Any = None

    def consume(self, chunks: Iterator[Any]) -> Generator[Event, None, None]:
        for chunk in chunks:
            self.last = chunk
            if chunk.usage is not None:
                self.usage = chunk.usage
            if chunk.model:
                self.model = chunk.model
            for choice in chunk.choices or ():
                if choice.index:  # n > 1 is never requested
                    continue
                delta = choice.delta
                if delta is not None:
                    yield from self._delta(delta)
                if choice.finish_reason:
                    self.finish = choice.finish_reason

    def _delta(self, delta: Any) -> Generator[Event, None, None]:
        # `reasoning_content`: DeepSeek, vLLM, llama.cpp; `reasoning`: OpenRouter, Ollama.
        reasoning = getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None)
        if isinstance(reasoning, str) and reasoning:
            yield ThinkingDelta(reasoning)
        if delta.content:
            self.text.append(delta.content)
            yield TextDelta(delta.content)
        if delta.refusal:
            self.refusal.append(delta.refusal)
            yield TextDelta(delta.refusal)
        for tc in delta.tool_calls or ():
            yield from self._tool_call_delta(tc)

    def _tool_call_delta(self, tc: Any) -> Generator[Event, None, None]:
        index = tc.index if isinstance(tc.index, int) else len(self.calls)
        call = self.by_index.get(index)
        if call is None or (tc.id and call.id and tc.id != call.id):
            # A new call (some servers reuse index 0 for every call of a response).
            call = _Call(id=tc.id or "", name="", arguments=[])
            self.by_index[index] = call
            self.calls.append(call)
        elif tc.id and not call.id:
            call.id = tc.id
        function = tc.function
        arguments: Any = None
        if function is not None:
            if function.name:
                call.name += function.name
            arguments = function.arguments
            if arguments is not None and not isinstance(arguments, str):
                arguments = json.dumps(arguments)  # a server that sends an object
            if arguments:
                call.arguments.append(arguments)
        if not call.started and call.name:
            # The start waits for the name (servers send it with the id, or just after).
            call.id = call.id or f"call_{uuid.uuid4().hex[:24]}"
            call.started = True
            yield ToolCallStart(call.id, call.name)
            if call.arguments:
                yield ToolInputDelta(call.id, "".join(call.arguments))
        elif call.started and arguments:
            yield ToolInputDelta(call.id, arguments)

    def response(self, partial: bool = False) -> ModelResponse:
        content: list[dict[str, Any]] = []
        text = "".join(self.text) + "".join(self.refusal)
        if text:
            content.append({"type": "text", "text": text})
        if not partial:
            for call in self.calls:
                if not call.name:
                    continue
                call.id = call.id or f"call_{uuid.uuid4().hex[:24]}"
                content.append(
                    {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": parse_arguments("".join(call.arguments)),
                    }
                )
        stop = STOP_REASONS.get(self.finish or "", "end_turn")
        if any(b["type"] == "tool_use" for b in content) and stop == "end_turn":
            stop = "tool_use"  # Ollama and Gemini finish a tool call with "stop"
        if self.refusal:
            stop = "refusal"
        usage = _usage_counts(self.usage)
        return ModelResponse(
            content=content,
            stop_reason=stop,
            model=self._priced_model(),
            raw=None if partial else self._raw(content, stop),
            **usage,
        )

    def _priced_model(self) -> str:
        """The model the usage is priced as: the one that answered when the table knows
        it (a router's pick), else the requested one (OpenAI answers with dated snapshot
        ids such as gpt-5.1-2025-11-13)."""
        if self.model and model_info(self.model).known:
            return self.model
        return self.requested_model or self.model

    def _raw(self, content: list[dict[str, Any]], stop: str) -> Any:
        """The response as the SDK's own `ChatCompletion` (RunResult.raw)."""
        from openai.types.chat import ChatCompletion

        calls = [
            {
                "id": b["id"],
                "type": "function",
                "function": {"name": b["name"], "arguments": json.dumps(b["input"])},
            }
            for b in content
            if b["type"] == "tool_use"
        ]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) or None}
        if self.refusal:
            message["refusal"] = "".join(self.refusal)
        if calls:
            message["tool_calls"] = calls
        last = self.last
        return ChatCompletion.construct(
            id=getattr(last, "id", "") or "",
            object="chat.completion",
            created=getattr(last, "created", 0) or 0,
            model=self.model or self.requested_model,
            choices=[{"index": 0, "message": message, "finish_reason": self.finish or "stop"}],
            usage=self.usage.to_dict() if self.usage is not None else None,
        )


def parse_arguments(arguments: str) -> dict[str, Any]:
    """A tool call's arguments as a dict. Arguments that are not a JSON object are kept
    under `invalid_json_arguments`, so the tool's input check tells the model."""
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        return {"invalid_json_arguments": arguments}
    return value if isinstance(value, dict) else {"invalid_json_arguments": arguments}


def _usage_counts(usage: Any) -> dict[str, int]:
    if usage is None:
        return {}
    prompt = getattr(usage, "prompt_tokens", 0) or 0
    details = getattr(usage, "prompt_tokens_details", None)
    cached = (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
    # DeepSeek reports its cache hits in a field of its own.
    cached = cached or getattr(usage, "prompt_cache_hit_tokens", 0) or 0
    cached = min(cached, prompt)
    return {
        "input_tokens": prompt - cached,
        "output_tokens": getattr(usage, "completion_tokens", 0) or 0,
        "cache_read_input_tokens": cached,
    }


# --------------------------------------------------------------------------- errors


def is_openai_error(exc: BaseException) -> bool:
    """True for the `openai` SDK's API errors (without importing the SDK if unused)."""
    import sys

    openai = sys.modules.get("openai")
    return openai is not None and isinstance(exc, openai.APIError)


def describe_openai_error(exc: BaseException, model: str | None = None) -> str | None:
    """One line a user can act on for an `openai` SDK error, in the words nbagent uses
    for the same failure with Anthropic; None for any other exception."""
    if not is_openai_error(exc):
        return None
    import openai

    endpoint: Endpoint = getattr(exc, "nbagent_endpoint", None) or Endpoint()
    url, model = endpoint_of(exc, model)
    at = f"{url or f'the {endpoint.label} API'}{f' (model {model})' if model else ''}"
    key_env = endpoint.key_env or "the api_key setting"
    url_env = endpoint.url_env or "the base_url setting"
    if isinstance(exc, openai.AuthenticationError):
        return f"The API key was rejected (401) by {at}: check {key_env}."
    if isinstance(exc, openai.PermissionDeniedError):
        return sentences(f"Permission denied (403) by {at}: {api_message(exc)}")
    if isinstance(exc, openai.NotFoundError):
        return sentences(
            f"Not found (404) at {at}: {api_message(exc)}",
            f"Check the model name and {url_env}",
        )
    if isinstance(exc, openai.RateLimitError):
        if getattr(exc, "code", None) == "insufficient_quota":
            return sentences(
                f"The quota of this key is used up (429) at {at}: {api_message(exc)}",
                "Check the plan and billing of the account",
            )
        return sentences(
            f"Rate limited (429) by {at} after retries: {api_message(exc)}",
            "Wait and try again",
        )
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code in (502, 503):
            return f"The API at {at} is overloaded or unavailable ({exc.status_code}) after retries: try again shortly."
        return sentences(f"API error {exc.status_code}: {api_message(exc)}", f"Sent to {at}")
    if isinstance(exc, openai.APITimeoutError):
        return f"The request to {at} timed out: try again, or raise the timeout."
    if isinstance(exc, openai.APIConnectionError):
        reason = connection_reason(exc)
        if never_connected(exc):
            return sentences(f"Could not connect to {at}: {reason}", f"Check {url_env}")
        return sentences(
            f"The connection to {at} failed: {reason}",
            "The conversation is intact; try again",
        )
    return sentences(f"{type(exc).__name__} from {at}: {api_message(exc)}")
