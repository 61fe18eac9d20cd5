"""A scripted fake of the OpenAI Chat Completions API, for tests and benchmarks.

Stdlib only, like ``tests/fake_anthropic.py``: a ``ThreadingHTTPServer`` on 127.0.0.1 (free
port) in a daemon thread, speaking enough of the real wire format (JSON errors, SSE chunks,
``data: [DONE]``) that the real ``openai`` SDK streams against it.

It is scripted with the same builders as the Anthropic fake, so one script runs against
both providers (``tests/test_provider_parity.py``)::

    from tests.fake_anthropic import reply, text, thinking, tool_use, error, cut
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        server.enqueue(
            reply(thinking("hmm"), text("Let me look."), tool_use("add", {"a": 1, "b": 2})),
            error(429, retry_after=0),  # the SDK retries this one...
            "The sum is 3.",            # ...and gets this
        )
        client = openai.OpenAI(base_url=server.url, api_key="sk-fake")

How a scripted reply is streamed (one SSE ``data:`` line per chunk, ``cut(r, n)`` counts
these chunks):

- a first chunk with ``delta.role = "assistant"``;
- thinking blocks as ``delta.reasoning_content`` chunks (``reasoning_field="reasoning"``
  plays OpenRouter and Ollama, which name the field ``reasoning``);
- text blocks as ``delta.content`` chunks;
- each tool_use block as one tool call at its own ``index``: a chunk with its id, type and
  name and empty arguments, then its arguments JSON split over chunks;
- a chunk with ``finish_reason`` (end_turn -> stop, tool_use -> tool_calls,
  max_tokens -> length, refusal -> content_filter);
- when the request asks for ``stream_options.include_usage``, a chunk with no choices and
  the usage: ``prompt_tokens`` counts cached tokens too (``prompt_tokens_details``), so a
  script's ``input_tokens`` (uncached) and ``cache_read_input_tokens`` add up to it;
- ``data: [DONE]``.

The fake refuses (400, without consuming a scripted response) what the real API refuses,
so a translation mistake fails a test: unknown request arguments (``system``, ``thinking``,
``output_config``...), ``max_tokens`` on reasoning models, a ``tool`` message that answers
no preceding tool call, an assistant tool call left unanswered, ``tool_choice`` without
``tools``, images outside user messages, and images at all when ``vision=False``.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fake_anthropic import Cut, Error, Reply, Response, reply, text

__all__ = ["FakeOpenAI", "FAKE_OPENAI_KEY", "FINISH_REASONS", "chat_rejection"]

FAKE_OPENAI_KEY = "sk-fake-openai-test-key"

FINISH_REASONS = {
    "end_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "refusal": "content_filter",
    "stop_sequence": "stop",
    "pause_turn": "stop",
}

# (type, code) of OpenAI's error bodies by status.
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}

# --------------------------------------------------------------------------- API rules

# The Chat Completions request arguments the API knows; any other is a 400.
KNOWN_ARGUMENTS = frozenset(
    {
        "messages",
        "model",
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _is_reasoning_model(model: str) -> bool:
    return bool(re.match(r"^(o\d|gpt-5)", model))


def chat_rejection(body: dict[str, Any], *, vision: bool = True) -> str | None:
    """The 400 message the real API answers this /chat/completions body with, or None."""
    unknown = sorted(set(body) - KNOWN_ARGUMENTS)
    if unknown:
        return f"Unrecognized request argument supplied: {unknown[0]}"
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "you must provide a model parameter"
    if "max_tokens" in body and _is_reasoning_model(model):
        return (
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead."
        )
    if "stream_options" in body and not body.get("stream"):
        return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    tools = body.get("tools")
    if "tool_choice" in body and not tools:
        return "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
    for i, t in enumerate(tools or []):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict):
            return f"Invalid 'tools[{i}]': expected a function tool."
        if not _TOOL_NAME.match(str(fn.get("name", ""))):
            return f"Invalid 'tools[{i}].function.name': string does not match pattern."
    choice = body.get("tool_choice")
    if isinstance(choice, str) and choice not in ("none", "auto", "required"):
        return f"Invalid value for 'tool_choice': {choice!r}."
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if choice.get("type") != "function" or name not in {
            (t.get("function") or {}).get("name") for t in tools or []
        }:
            return "Invalid value for 'tool_choice': no function with that name in 'tools'."
    return _messages_rejection(body.get("messages"), vision)


def _messages_rejection(messages: Any, vision: bool) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "'messages' must contain at least one message."
    open_calls: list[str] = []  # ids of the last assistant's tool calls not yet answered
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in _ROLES:
            return f"Invalid value for 'messages[{i}].role'."
        if role != "tool" and open_calls:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(open_calls)}"
            )
        content = m.get("content")
        if role == "tool":
            call_id = m.get("tool_call_id")
            if call_id not in open_calls:
                return (
                    f"Invalid parameter: messages with role 'tool' must be a response to a "
                    f"preceeding message with 'tool_calls' (messages[{i}])."
                )
            open_calls.remove(call_id)
        elif role == "assistant":
            calls = m.get("tool_calls") or []
            if content is None and not calls:
                return f"Invalid 'messages[{i}]': content is required without tool_calls."
            for call in calls:
                fn = call.get("function") or {}
                if not call.get("id") or not isinstance(fn.get("arguments"), str):
                    return f"Invalid 'messages[{i}].tool_calls': id and arguments are required."
            open_calls = [c["id"] for c in calls]
        problem = _content_rejection(i, role, content, vision)
        if problem:
            return problem
    if open_calls:
        return (
            "An assistant message with 'tool_calls' must be followed by tool messages "
            f"responding to each 'tool_call_id'. Missing: {', '.join(open_calls)}"
        )
    return None


def _content_rejection(i: int, role: str, content: Any, vision: bool) -> str | None:
    if content is None or isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"Invalid type for 'messages[{i}].content'."
    allowed = {"text"} | ({"image_url", "input_audio", "file"} if role == "user" else set())
    if role == "assistant":
        allowed.add("refusal")
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "image_url" and role != "user":
            return f"Invalid 'messages[{i}]'. Image URLs are only allowed for messages with role 'user'."
        if kind not in allowed:
            return f"Invalid value for 'messages[{i}].content[].type': {kind!r}."
        if kind == "image_url":
            if not vision:
                return "Invalid content type. image_url is only supported by certain models."
            url = (part.get("image_url") or {}).get("url", "")
            if not str(url).startswith(("data:image/", "http://", "https://")):
                return f"Invalid 'messages[{i}]': image_url.url must be a URL or a data URL."
    return None


# --------------------------------------------------------------------------- rendering


def _chunks(s: str, size: int) -> list[str]:
    return [s[i : i + size] for i in range(0, len(s), size)] if s else []


def _rough_tokens(n_chars: int) -> int:
    return max(1, n_chars // 4)


class _Renderer:
    """Turns one scripted Reply into the list of chunk objects the API would stream."""

    def __init__(self, fake: FakeOpenAI, body: dict[str, Any]) -> None:
        self.fake = fake
        self.body = body
        self.id = f"chatcmpl-fake-{fake._next('cmpl')}"
        self.created = int(time.time())

    def chunk(self, model: str, delta: dict[str, Any] | None, finish: str | None = None) -> dict:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
        }

    def render(self, r: Reply) -> list[dict[str, Any]]:
        model = r.model or str(self.body.get("model"))
        field = self.fake.reasoning_field
        out = [self.chunk(model, {"role": "assistant", "content": ""})]
        out_chars = reasoning_chars = 0
        tool_index = 0
        for b in r.blocks:
            if b.type == "thinking":
                out += [self.chunk(model, {field: c}) for c in _chunks(b.text, b.chunk)]
                reasoning_chars += len(b.text)
            elif b.type == "text":
                out += [self.chunk(model, {"content": c}) for c in _chunks(b.text, b.chunk)]
                out_chars += len(b.text)
            elif b.type == "tool_use":
                call_id = b.id or f"call_fake_{self.fake._next('call')}"
                head = {
                    "index": tool_index,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": b.name, "arguments": ""},
                }
                out.append(self.chunk(model, {"tool_calls": [head]}))
                arguments = json.dumps(b.input)
                out += [
                    self.chunk(
                        model, {"tool_calls": [{"index": tool_index, "function": {"arguments": c}}]}
                    )
                    for c in _chunks(arguments, b.chunk)
                ]
                out_chars += len(arguments)
                tool_index += 1
            else:
                raise ValueError(f"unknown block type {b.type!r}")
        finish = FINISH_REASONS[r.stop_reason or "end_turn"]
        out.append(self.chunk(model, {}, finish))
        if (self.body.get("stream_options") or {}).get("include_usage"):
            out.append(self._usage_chunk(model, r, out_chars, reasoning_chars))
        return out

    def _usage_chunk(self, model: str, r: Reply, out_chars: int, reasoning_chars: int) -> dict:
        script = r.usage or {}
        cached = script.get("cache_read_input_tokens", 0)
        uncached = script.get(
            "input_tokens", _rough_tokens(len(json.dumps(self.body.get("messages"))))
        )
        reasoning = _rough_tokens(reasoning_chars) if reasoning_chars else 0
        completion = script.get("output_tokens", _rough_tokens(out_chars) + reasoning)
        usage = {
            "prompt_tokens": uncached + cached,
            "completion_tokens": completion,
            "total_tokens": uncached + cached + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }
        return {**self.chunk(model, None), "usage": usage}


# --------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", f"req_fake_{self.server.fake._next('req')}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, e: Error) -> None:
        kind, code = _ERROR_KINDS.get(e.status, ("server_error", None))
        headers: dict[str, str] = {}
        if e.retry_after is not None:
            headers["retry-after"] = f"{e.retry_after:g}"
            headers["retry-after-ms"] = f"{max(1.0, e.retry_after * 1000):g}"
        if e.status == 429 or e.status >= 500:
            headers["x-should-retry"] = "true"
        body = {
            "error": {
                "message": e.message,
                "type": e.error_type or kind,
                "param": None,
                "code": code,
            }
        }
        self._send_json(e.status, body, headers)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _stream(self, chunks: list[dict[str, Any]], delay: float, limit: int | None) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("x-request-id", f"req_fake_{self.server.fake._next('req')}")
        self.end_headers()
        self.wfile.flush()
        sent = chunks if limit is None else chunks[: max(0, limit)]
        try:
            for i, chunk in enumerate(sent):
                if delay and i:
                    time.sleep(delay)
                self._write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
            if limit is None:
                self._write_chunk(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                return
        except (BrokenPipeError, ConnectionResetError):  # the client went away (a stop)
            self.close_connection = True
            return
        # Cut: drop the connection mid-body (the chunked body is never terminated).
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read_body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            obj = json.loads(raw) if raw else {}
        except ValueError:
            return None
        return obj if isinstance(obj, dict) else None

    def do_POST(self) -> None:
        body = self._read_body()
        path = self.path.split("?", 1)[0]
        fake = self.server.fake
        fake._record(path, {k.lower(): v for k, v in self.headers.items()}, body)
        if body is None:
            self._send_error(Error(400, "We could not parse the JSON body of your request."))
        elif path == "/v1/chat/completions":
            self._completions(body)
        else:
            self._send_error(Error(404, f"fake server: no route for POST {path}"))

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/v1/models":
            models = [{"id": m, "object": "model", "owned_by": "fake"} for m in self.server.models]
            self._send_json(200, {"object": "list", "data": models})
        else:
            self._send_error(Error(404, f"fake server: no route for GET {path}"))

    def _completions(self, body: dict[str, Any]) -> None:
        fake = self.server.fake
        if fake.api_key is not None:
            if self.headers.get("authorization") != f"Bearer {fake.api_key}":
                self._send_error(Error(401, "Incorrect API key provided."))
                return
        rejection = chat_rejection(body, vision=fake.vision)
        if rejection is not None:  # refused before the model runs: no scripted reply is used
            self._send_error(Error(400, rejection))
            return
        resp = fake._next_response(body)
        if resp is None:
            self._send_error(Error(500, "fake server: no scripted response left"))
            return
        if isinstance(resp, str):
            resp = reply(text(resp))
        if isinstance(resp, Error):
            self._send_error(resp)
            return
        r, limit = (resp.reply, resp.after_events) if isinstance(resp, Cut) else (resp, None)
        chunks = _Renderer(fake, body).render(r)
        if body.get("stream"):
            self._stream(chunks, r.delay, limit)
        else:
            self._send_json(200, _as_completion(chunks))


def _as_completion(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-streamed form of a streamed reply (for clients that do not stream)."""
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    finish = next(c["choices"][0]["finish_reason"] for c in chunks[::-1] if c["choices"])
    calls: dict[int, dict[str, Any]] = {}
    for c in chunks:
        for tc in (c["choices"][0]["delta"].get("tool_calls") or []) if c["choices"] else []:
            slot = calls.setdefault(
                tc["index"],
                {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
            )
            slot["id"] = tc.get("id") or slot["id"]
            fn = tc.get("function") or {}
            slot["function"]["name"] += fn.get("name") or ""
            slot["function"]["arguments"] += fn.get("arguments") or ""
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    usage = next((c["usage"] for c in chunks if c.get("usage")), None)
    return {
        **{k: chunks[0][k] for k in ("id", "created", "model")},
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeOpenAI
    models: tuple[str, ...] = ()

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up
            return
        super().handle_error(request, client_address)


class FakeOpenAI:
    """Scripted fake Chat Completions server. Starts on construction unless ``start=False``.

    ``url`` is the base URL the SDK takes (``http://127.0.0.1:<port>/v1``).
    ``api_key``: when set, requests without ``Authorization: Bearer <api_key>`` get a 401.
    ``vision=False`` plays a model that takes no images.
    """

    def __init__(
        self,
        start: bool = True,
        *,
        reasoning_field: str = "reasoning_content",
        vision: bool = True,
        api_key: str | None = None,
        models: tuple[str, ...] = ("gpt-5.1", "gpt-4o"),
    ) -> None:
        self._lock = threading.Lock()
        self._queue: list[Response] = []
        self._requests: list[dict[str, Any]] = []
        self._counters: dict[str, itertools.count[int]] = {}
        self.responder: Callable[[dict[str, Any]], Response] | None = None
        self.reasoning_field = reasoning_field
        self.vision = vision
        self.api_key = api_key
        self.models = models
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    def start(self) -> FakeOpenAI:
        if self._httpd is not None:
            return self
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        httpd.models = self.models
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-openai",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAI is not running")
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def enqueue(self, *responses: Response) -> FakeOpenAI:
        """Append responses to the FIFO queue; each completion request pops one."""
        for r in responses:
            if not isinstance(r, (Reply, Error, Cut, str)):
                raise TypeError(f"cannot enqueue {type(r).__name__}")
        with self._lock:
            self._queue.extend(responses)
        return self

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._requests.clear()
        self.responder = None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Recorded requests: ``{"path", "headers", "body"}`` dicts."""
        with self._lock:
            return list(self._requests)

    @property
    def last_body(self) -> dict[str, Any] | None:
        with self._lock:
            return self._requests[-1]["body"] if self._requests else None

    def _record(self, path: str, headers: dict[str, str], body: dict[str, Any] | None) -> None:
        with self._lock:
            self._requests.append({"path": path, "headers": headers, "body": body})

    def _next_response(self, body: dict[str, Any]) -> Response | None:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
        responder = self.responder
        return responder(body) if responder is not None else None

    def _next(self, kind: str) -> int:
        with self._lock:
            counter = self._counters.setdefault(kind, itertools.count(1))
            return next(counter)
