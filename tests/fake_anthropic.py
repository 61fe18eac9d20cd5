"""A scripted fake of the Anthropic Messages API, for tests and benchmarks.

Stdlib only: a ``ThreadingHTTPServer`` on 127.0.0.1 (free port) in a daemon
thread. It speaks enough of the real wire format (JSON and SSE) that the real
``anthropic`` SDK, including ``client.messages.stream(...)``, works against it.

Usage::

    from tests.fake_anthropic import FakeAnthropic, reply, text, thinking, tool_use, error, cut

    with FakeAnthropic() as server:
        server.enqueue(
            reply(thinking("let me see"), tool_use("bash", {"cmd": "ls"})),  # stop_reason "tool_use"
            error(529, retry_after=0),                    # SDK retries this one...
            "All done.",                                  # ...and gets this (str = reply(text(s)))
            cut(reply(text("partial answer " * 10)), after_events=4),  # dropped stream
        )
        client = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-fake", max_retries=2)
        with client.messages.stream(model="claude-x", max_tokens=100, messages=[...]) as s:
            msg = s.get_final_message()
        assert server.last_body["model"] == "claude-x"

    # or with a subprocess / env-driven code:
    os.environ.update(env_for(server))

The fake follows the real API's per-model defaults and checks (see "API rules" below): on
Opus 4.8/4.7, Fable 5 and Mythos 5 scripted thinking streams with empty text unless the
request sends ``thinking.display == "summarized"``; an effort a model does not take, a
forced ``tool_choice`` with thinking on, and a thinking type the model refuses get a 400
``invalid_request_error`` without consuming a scripted response. Other model names
(``claude-test-model``...) are not checked and stream thinking text as before.

When the queue is empty, ``server.responder(body)`` (if set) produces the
response; otherwise the server answers 500 "fake server: no scripted response
left" so a test fails loudly.

Tokens, caching and the context window (see "tokens, prompt caching, context" below)
follow the API's rules with a simple count: text at 4 characters a token and a fixed
cost per image, the same count for ``usage`` and ``/v1/messages/count_tokens``. Every
request's usage comes from that count and a prompt cache kept per server: the per-model
minimum cacheable prefix, the 20-block lookback, at most 4 breakpoints (a 400 beyond),
and ``tool_choice`` or thinking changes that invalidate the cached messages. A reply's
explicit ``usage`` still wins (its missing cache fields are 0). ``server.context_windows``
(model or family -> tokens) makes a model's window small: a longer prompt gets the API's
400 ``prompt is too long``. Server compaction (the ``compact_20260112`` edit with the
``compact-2026-01-12`` beta) is played too: past its trigger, the reply starts with a
``compaction`` block, and later requests are counted from that block, which must come
back exactly as it was sent.

SSE event order for a reply: ``message_start``, ``ping``, then per block
``content_block_start`` / ``content_block_delta``... / ``content_block_stop``,
then ``message_delta`` and ``message_stop``. ``cut(reply, n)`` counts events in
that order. Streams are sent with chunked transfer encoding and flushed per
event; a cut closes the socket mid-body, which the SDK surfaces as
``anthropic.APIConnectionError`` (wrapping ``httpx2.RemoteProtocolError``).
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "Block",
    "Reply",
    "Error",
    "Cut",
    "Response",
    "FakeAnthropic",
    "text",
    "thinking",
    "tool_use",
    "reply",
    "error",
    "cut",
    "env_for",
    "api_rejection",
    "api_model_family",
    "thinking_display",
    "DISPLAY_OMITTED_MODELS",
    "EFFORT_LEVELS",
    "IMAGE_TOKENS",
    "CACHE_LOOKBACK_BLOCKS",
    "MAX_CACHE_BREAKPOINTS",
    "COMPACTION_BETA",
    "MIN_COMPACTION_TRIGGER",
    "cache_minimum",
    "compaction_supported",
    "count_tokens",
    "prompt_tokens",
]

STOP_REASONS = frozenset(
    {"end_turn", "tool_use", "max_tokens", "pause_turn", "refusal", "stop_sequence"}
)

DEFAULT_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

FAKE_API_KEY = "sk-ant-fake-test-key"


# --------------------------------------------------------------------------- builders


@dataclass(frozen=True)
class Block:
    """One content block of a scripted reply (text, thinking or tool_use)."""

    type: str
    text: str = ""
    signature: str = ""
    name: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    chunk: int = 20


@dataclass(frozen=True)
class Reply:
    """A full assistant message."""

    blocks: tuple[Block, ...]
    stop_reason: str | None = None
    usage: dict[str, int] | None = None
    delay: float = 0.0
    model: str | None = None


@dataclass(frozen=True)
class Error:
    """An HTTP error with Anthropic's JSON error body."""

    status: int
    message: str = "fake server error"
    error_type: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class Cut:
    """Stream the first ``after_events`` SSE events of ``reply``, then drop the connection."""

    reply: Reply
    after_events: int


Response = Reply | Error | Cut | str


def text(s: str, chunk: int = 20) -> Block:
    """A text block, streamed as ``text_delta`` chunks of ``chunk`` characters."""
    return Block(type="text", text=s, chunk=max(1, chunk))


def thinking(s: str, signature: str = "sig-fake-thinking-signature", chunk: int = 20) -> Block:
    """A thinking block: ``thinking_delta`` chunks followed by one ``signature_delta``."""
    return Block(type="thinking", text=s, signature=signature, chunk=max(1, chunk))


def tool_use(name: str, input: dict[str, Any], id: str | None = None, chunk: int = 15) -> Block:
    """A tool_use block; input is streamed as ``input_json_delta`` chunks of ``json.dumps(input)``.

    ``id`` defaults to ``toolu_fake_<n>`` (unique per server).
    """
    return Block(type="tool_use", name=name, input=dict(input), id=id, chunk=max(1, chunk))


def reply(
    *blocks: Block | str,
    stop_reason: str | None = None,
    usage: dict[str, int] | None = None,
    delay: float = 0.0,
    model: str | None = None,
) -> Reply:
    """A full message. Plain strings are text blocks.

    ``stop_reason`` defaults to "tool_use" if any block is a tool_use, else "end_turn".
    ``usage`` keys override the rough defaults. ``delay`` is slept between SSE events.
    ``model`` defaults to the request's model.
    """
    bs = tuple(text(b) if isinstance(b, str) else b for b in blocks)
    if stop_reason is None:
        stop_reason = "tool_use" if any(b.type == "tool_use" for b in bs) else "end_turn"
    if stop_reason not in STOP_REASONS:
        raise ValueError(f"unknown stop_reason {stop_reason!r}")
    return Reply(blocks=bs, stop_reason=stop_reason, usage=usage, delay=delay, model=model)


def error(
    status: int,
    message: str = "fake server error",
    error_type: str | None = None,
    retry_after: float | None = None,
) -> Error:
    """An HTTP error. ``error_type`` defaults by status (429 rate_limit_error, 529 overloaded_error, ...).

    ``retry_after`` sets the ``retry-after`` header (and ``retry-after-ms``, at least 1 ms, so
    ``retry_after=0`` makes the SDK retry almost immediately instead of using its backoff).
    """
    return Error(status=status, message=message, error_type=error_type, retry_after=retry_after)


def cut(reply: Reply | str, after_events: int) -> Cut:
    """Stream only the first ``after_events`` SSE events of ``reply``, then close the socket."""
    r = Reply(blocks=(text(reply),), stop_reason="end_turn") if isinstance(reply, str) else reply
    return Cut(reply=r, after_events=after_events)


def env_for(server: FakeAnthropic) -> dict[str, str]:
    """Environment variables pointing the SDK at ``server``."""
    return {"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": FAKE_API_KEY}


# --------------------------------------------------------------------------- API rules
# What the real Messages API does per model, from ../shared/reference/claude-api/SKILL.md
# ("Thinking & Effort", "Thinking display"). Written out here rather than taken from
# nbagent.models on purpose: the fake plays the API, so a mistake in the product's model
# table shows up as a failing test instead of being agreed with.

EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")
_NO_XHIGH = ("low", "medium", "high", "max")

# family -> effort levels it takes (empty: it rejects output_config.effort).
_MODEL_EFFORTS: dict[str, tuple[str, ...]] = {
    "claude-fable-5": EFFORT_LEVELS,
    "claude-mythos-5": EFFORT_LEVELS,
    "claude-opus-4-8": EFFORT_LEVELS,
    "claude-opus-4-7": EFFORT_LEVELS,
    "claude-opus-4-6": _NO_XHIGH,
    "claude-sonnet-4-6": _NO_XHIGH,
    "claude-opus-4-5": ("low", "medium", "high"),
    "claude-haiku-4-5": (),
    "claude-sonnet-4-5": (),
    "claude-opus-4-1": (),
    "claude-opus-4-0": (),
    "claude-opus-4": (),
    "claude-sonnet-4-0": (),
    "claude-sonnet-4": (),
    "claude-3-haiku": (),
}
_ADAPTIVE_MODELS = frozenset(
    {
        "claude-fable-5",
        "claude-mythos-5",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-sonnet-4-6",
    }
)
# Adaptive is the only way to turn thinking on; budget_tokens is gone.
_ADAPTIVE_ONLY_MODELS = frozenset(
    {"claude-fable-5", "claude-mythos-5", "claude-opus-4-8", "claude-opus-4-7"}
)
# Thinking streams with empty text unless the request asks for display "summarized".
DISPLAY_OMITTED_MODELS = _ADAPTIVE_ONLY_MODELS
# Always think, even without a thinking parameter; {"type": "disabled"} is a 400.
_ALWAYS_THINKING_MODELS = frozenset({"claude-fable-5", "claude-mythos-5"})
_THINKING_DISPLAYS = ("summarized", "omitted")


def api_model_family(model: str) -> str | None:
    """The family of a model id the API knows (``claude-haiku-4-5-20251001`` -> ``claude-haiku-4-5``).

    None for names the fake makes up (``claude-test-model``): those are not checked.
    """
    m = re.sub(r"-\d{8}$", "", model)
    for family in sorted(_MODEL_EFFORTS, key=len, reverse=True):
        rest = m[len(family) :]
        if m.startswith(family) and (rest == "" or (rest[0] == "-" and not rest[1:2].isdigit())):
            return family
    return None


def thinking_display(body: dict[str, Any]) -> str:
    """How the API shows thinking text for this request: "summarized" or "omitted"."""
    thinking_cfg = body.get("thinking")
    if isinstance(thinking_cfg, dict) and thinking_cfg.get("display") in _THINKING_DISPLAYS:
        return str(thinking_cfg["display"])
    family = api_model_family(str(body.get("model", "")))
    return "omitted" if family in DISPLAY_OMITTED_MODELS else "summarized"


def api_rejection(body: dict[str, Any]) -> str | None:
    """The 400 message the real API answers this /v1/messages body with, or None."""
    family = api_model_family(str(body.get("model", "")))
    thinking_cfg = body.get("thinking")
    thinking_type = thinking_cfg.get("type") if isinstance(thinking_cfg, dict) else None
    if isinstance(thinking_cfg, dict) and "display" in thinking_cfg:
        if thinking_cfg["display"] not in _THINKING_DISPLAYS:
            return "thinking.display: Input should be 'summarized' or 'omitted'"
    if family is not None:
        if thinking_type == "adaptive" and family not in _ADAPTIVE_MODELS:
            return f"thinking.type 'adaptive' is not supported on {family}."
        if thinking_type == "enabled" and family in _ADAPTIVE_ONLY_MODELS:
            return (
                f"thinking.type 'enabled' is not supported on {family}; "
                "use thinking.type 'adaptive' and output_config.effort."
            )
        if thinking_type == "disabled" and family in _ALWAYS_THINKING_MODELS:
            return f"thinking cannot be disabled on {family}; omit the thinking parameter."

    output_config = body.get("output_config")
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    if effort is not None:
        if effort not in EFFORT_LEVELS:
            return "output_config.effort: Input should be " + ", ".join(
                repr(level) for level in EFFORT_LEVELS
            )
        if family is not None and not _MODEL_EFFORTS[family]:
            return f"{family} does not support the effort parameter."
        if family is not None and effort not in _MODEL_EFFORTS[family]:
            return f"output_config.effort {effort!r} is not supported on {family}."

    tool_choice = body.get("tool_choice")
    forced = isinstance(tool_choice, dict) and tool_choice.get("type") in ("any", "tool")
    thinking_on = thinking_type in ("adaptive", "enabled") or (
        family in _ALWAYS_THINKING_MODELS and thinking_type is None
    )
    if forced and thinking_on:
        return "Thinking may not be enabled when tool_choice forces tool use."
    return None


# -------------------------------------------------------------- tokens, prompt caching, context
# The API's rules from ../shared/reference/claude-api/shared/prompt-caching.md and SKILL.md
# ("Compaction"), again written out rather than taken from nbagent.

IMAGE_TOKENS = 1_600  # one image, whatever its size (a full-size image costs about this)
CACHE_LOOKBACK_BLOCKS = 20  # a breakpoint finds a cached prefix at most this many blocks back
MAX_CACHE_BREAKPOINTS = 4
_STRUCTURAL_KEYS = frozenset({"type", "role", "id", "tool_use_id", "cache_control", "signature"})

# Minimum cacheable prefix per family ("Minimum cacheable prefix" table); shorter prefixes
# silently are not cached. Families the table leaves out get the lowest minimum.
_CACHE_MINIMUMS: dict[str, int] = {
    "claude-opus-4-8": 4096,
    "claude-opus-4-7": 4096,
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-haiku-4-5": 4096,
    "claude-fable-5": 2048,
    "claude-mythos-5": 2048,
    "claude-sonnet-4-6": 2048,
    "claude-3-haiku": 2048,
    "claude-sonnet-4-5": 1024,
    "claude-sonnet-4-0": 1024,
    "claude-sonnet-4": 1024,
    "claude-opus-4-1": 1024,
    "claude-opus-4-0": 1024,
    "claude-opus-4": 1024,
}
DEFAULT_CACHE_MINIMUM = 1024

COMPACTION_BETA = "compact-2026-01-12"
CONTEXT_MANAGEMENT_BETA = "context-management-2025-06-27"
COMPACTION_MODELS = frozenset(
    {"claude-fable-5", "claude-opus-4-8", "claude-opus-4-7", "claude-opus-4-6", "claude-sonnet-4-6"}
)
MIN_COMPACTION_TRIGGER = 50_000
DEFAULT_COMPACTION_TRIGGER = 150_000
_EDIT_BETAS = {
    "compact_20260112": COMPACTION_BETA,
    "clear_tool_uses_20250919": CONTEXT_MANAGEMENT_BETA,
    "clear_thinking_20251015": CONTEXT_MANAGEMENT_BETA,
}


def cache_minimum(model: str) -> int:
    family = api_model_family(model)
    return _CACHE_MINIMUMS.get(family, DEFAULT_CACHE_MINIMUM) if family else DEFAULT_CACHE_MINIMUM


def compaction_supported(model: str) -> bool:
    """Whether the API takes the compaction edit for ``model`` (made-up names: yes)."""
    family = api_model_family(model)
    return family is None or family in COMPACTION_MODELS


def _text_and_images(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        return len(value), 0
    if isinstance(value, dict):
        if value.get("type") == "image":
            return 0, 1
        chars = images = 0
        for key, item in value.items():
            if key not in _STRUCTURAL_KEYS:
                c, i = _text_and_images(item)
                chars, images = chars + c, images + i
        return chars, images
    if isinstance(value, list):
        chars = images = 0
        for item in value:
            c, i = _text_and_images(item)
            chars, images = chars + c, images + i
        return chars, images
    return 0, 0


def count_tokens(block: Any) -> int:
    """Tokens of one block (tool, system block or content block): text / 4 + images."""
    chars, images = _text_and_images(block)
    return chars // 4 + images * IMAGE_TOKENS


def _since_compaction(messages: list[Any]) -> list[tuple[int, int, Any]]:
    """(message index, block index, block) the API reads: from the last compaction block on."""
    flat = []
    for m, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            flat.append((m, 0, {"type": "text", "text": content}))
        elif isinstance(content, list):
            flat += [(m, b, block) for b, block in enumerate(content)]
    for i in range(len(flat) - 1, -1, -1):
        block = flat[i][2]
        if isinstance(block, dict) and block.get("type") == "compaction":
            return flat[i:]
    return flat


@dataclass
class _Prompt:
    """A request as the API reads it: one element per tool, system block and message block."""

    tokens: list[int]
    digests: list[str]  # the cache key of the prefix ending at each element
    breakpoints: list[int]
    blocks: list[tuple[int, int, Any]]  # the message blocks read (from the last compaction)

    @property
    def total(self) -> int:
        return sum(self.tokens)


def _prompt(body: dict[str, Any]) -> _Prompt:
    import hashlib

    system = body.get("system") or []
    system_blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
    blocks = _since_compaction(body.get("messages") or [])
    thinking_cfg = body.get("thinking")
    thinking_on = isinstance(thinking_cfg, dict) and thinking_cfg.get("type") in (
        "adaptive",
        "enabled",
    )
    # Tools, then system, then messages; a change in one tier invalidates it and the tiers
    # after it. tool_choice and thinking on/off invalidate the messages tier only.
    tiers: list[tuple[str, list[Any]]] = [
        ("tools", list(body.get("tools") or [])),
        ("system", list(system_blocks)),
        ("messages", [b for _, _, b in blocks]),
    ]
    running = hashlib.sha256(str(body.get("model", "")).encode())
    tokens: list[int] = []
    digests: list[str] = []
    breakpoints: list[int] = []
    for tier, elements in tiers:
        running.update(f"|{tier}|".encode())
        if tier == "messages":
            settings = {"tool_choice": body.get("tool_choice"), "thinking": thinking_on}
            running.update(json.dumps(settings, sort_keys=True).encode())
        for element in elements:
            if isinstance(element, dict) and "cache_control" in element:
                breakpoints.append(len(tokens))
                element = {k: v for k, v in element.items() if k != "cache_control"}
            running.update(json.dumps(element, sort_keys=True).encode())
            tokens.append(count_tokens(element))
            digests.append(running.copy().hexdigest())
    if body.get("cache_control") and tokens:  # automatic caching: the last block
        breakpoints.append(len(tokens) - 1)
    return _Prompt(tokens, digests, sorted(set(breakpoints)), blocks)


def prompt_tokens(body: dict[str, Any]) -> int:
    """Input tokens of a /v1/messages body, as the fake counts them."""
    return _prompt(body).total


class _PromptCache:
    """The server's prompt cache: prefixes written at breakpoints, read back by later ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: set[str] = set()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def usage(self, prompt: _Prompt, model: str) -> dict[str, int]:
        """Read the longest cached prefix a breakpoint finds (looking back at most 20
        blocks), write a cache entry at every later breakpoint whose prefix reaches the
        model's minimum, and split the input into uncached, written and read tokens."""
        cumulative = list(itertools.accumulate(prompt.tokens))
        minimum = cache_minimum(model)
        with self._lock:
            hit = -1
            for point in prompt.breakpoints:
                for back in range(point, max(-1, point - CACHE_LOOKBACK_BLOCKS - 1), -1):
                    if prompt.digests[back] in self._entries:
                        hit = max(hit, back)
                        break
            written = hit
            for point in prompt.breakpoints:
                if point > hit and cumulative[point] >= minimum:
                    self._entries.add(prompt.digests[point])
                    written = max(written, point)
        read = cumulative[hit] if hit >= 0 else 0
        write = cumulative[written] - read if written > hit else 0
        return {
            "input_tokens": prompt.total - read - write,
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": read,
        }


def _context_rejection(body: dict[str, Any], headers: dict[str, str]) -> str | None:
    """The 400 message for a context_management the API would refuse, or None."""
    management = body.get("context_management")
    if management is None:
        return None
    betas = {b.strip() for b in headers.get("anthropic-beta", "").split(",") if b.strip()}
    edits = management.get("edits") if isinstance(management, dict) else None
    if not isinstance(edits, list):
        return "context_management.edits: Field required"
    for i, edit in enumerate(edits):
        kind = edit.get("type") if isinstance(edit, dict) else None
        if kind not in _EDIT_BETAS:
            return f"context_management.edits.{i}.type: unknown edit {kind!r}"
        if _EDIT_BETAS[kind] not in betas:
            return (
                f"context_management edit {kind!r} requires the beta header {_EDIT_BETAS[kind]!r}"
            )
        if kind == "compact_20260112":
            if not compaction_supported(str(body.get("model", ""))):
                return f"compact_20260112 is not supported on {body.get('model')}."
            trigger = (edit.get("trigger") or {}).get("value", DEFAULT_COMPACTION_TRIGGER)
            if not isinstance(trigger, int) or trigger < MIN_COMPACTION_TRIGGER:
                return (
                    f"context_management.edits.{i}.trigger.value: must be at least "
                    f"{MIN_COMPACTION_TRIGGER}"
                )
    return None


def _compaction_edit(body: dict[str, Any]) -> dict[str, Any] | None:
    management = body.get("context_management")
    for edit in (management or {}).get("edits") or []:
        if isinstance(edit, dict) and edit.get("type") == "compact_20260112":
            return edit
    return None


# --------------------------------------------------------------------------- rendering


def _rough_tokens(n_chars: int) -> int:
    return max(1, n_chars // 4)


def _chunks(s: str, size: int) -> list[str]:
    return [s[i : i + size] for i in range(0, len(s), size)]


def _error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


@dataclass
class _Rendered:
    message: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]


def _render(
    r: Reply,
    body: dict[str, Any],
    msg_id: str,
    next_tool_id: Callable[[], str],
    input_usage: dict[str, int] | None = None,
    iterations: list[dict[str, Any]] | None = None,
) -> _Rendered:
    """Turn a Reply into the final Message JSON and its SSE event list.

    ``input_usage`` is the request's input split (uncached, cache writes, cache reads);
    a reply's own ``usage`` wins over it, with 0 for the cache fields it leaves out.
    """
    content: list[dict[str, Any]] = []
    block_events: list[tuple[str, dict[str, Any]]] = []
    out_chars = 0
    show_thinking = thinking_display(body) == "summarized"
    for index, b in enumerate(r.blocks):
        final: dict[str, Any]
        start: dict[str, Any]
        deltas: list[dict[str, Any]]
        if b.type == "text":
            final = {"type": "text", "text": b.text}
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": c} for c in _chunks(b.text, b.chunk)]
            out_chars += len(b.text)
        elif b.type == "thinking":
            # Display "omitted": the block and its signature arrive, its text does not.
            # The thinking is billed the same either way.
            shown = b.text if show_thinking else ""
            final = {"type": "thinking", "thinking": shown, "signature": b.signature}
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": c} for c in _chunks(shown, b.chunk)]
            deltas.append({"type": "signature_delta", "signature": b.signature})
            out_chars += len(b.text)
        elif b.type == "compaction":
            # The summary arrives whole in one delta, with its opaque metadata.
            final = {"type": "compaction", "content": b.text, "encrypted_content": b.signature}
            start = {"type": "compaction", "content": None}
            deltas = [
                {"type": "compaction_delta", "content": b.text, "encrypted_content": b.signature}
            ]
        elif b.type == "tool_use":
            tid = b.id or next_tool_id()
            final = {"type": "tool_use", "id": tid, "name": b.name, "input": b.input}
            start = {"type": "tool_use", "id": tid, "name": b.name, "input": {}}
            js = json.dumps(b.input)
            deltas = [{"type": "input_json_delta", "partial_json": c} for c in _chunks(js, b.chunk)]
            out_chars += len(js)
        else:
            raise ValueError(f"unknown block type {b.type!r}")
        content.append(final)
        block_events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        block_events += [
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        ]
        block_events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))

    usage: dict[str, Any] = {
        "input_tokens": prompt_tokens(body),
        "output_tokens": _rough_tokens(out_chars),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    if r.usage:
        usage.update(r.usage)
    elif input_usage:
        usage.update(input_usage)
    if iterations:
        for entry in iterations:
            if entry["type"] == "message":
                entry["output_tokens"] = usage["output_tokens"]
        usage["iterations"] = iterations
    model = r.model or str(body.get("model", "claude-fake"))
    message: dict[str, Any] = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": r.stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    start_msg = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start_msg}),
        ("ping", {"type": "ping"}),
        *block_events,
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": r.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return _Rendered(message=message, events=events)


# --------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    # -- helpers

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_fake_{self.server.fake._next('req')}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, e: Error) -> None:
        self.server.fake._record_error(e)
        etype = e.error_type or DEFAULT_ERROR_TYPES.get(e.status, "api_error")
        headers: dict[str, str] = {}
        if e.retry_after is not None:
            headers["retry-after"] = f"{e.retry_after:g}"
            headers["retry-after-ms"] = f"{max(1.0, e.retry_after * 1000):g}"
        if e.status == 429 or e.status >= 500:
            headers["x-should-retry"] = "true"
        self._send_json(e.status, _error_body(etype, e.message), headers)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _stream(self, rendered: _Rendered, delay: float, limit: int | None) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", f"req_fake_{self.server.fake._next('req')}")
        self.end_headers()
        self.wfile.flush()
        events = rendered.events if limit is None else rendered.events[: max(0, limit)]
        try:
            for i, (name, data) in enumerate(events):
                if delay and i:
                    time.sleep(delay)
                self._write_chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            if limit is None:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                return
        except (BrokenPipeError, ConnectionResetError):  # client went away (interrupt tests)
            self.close_connection = True
            return
        # Cut: drop the connection mid-body (the chunked body is never terminated).
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- routing

    def _read_body(self) -> tuple[dict[str, Any] | None, str | None]:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}, None
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            return None, f"invalid JSON body: {exc}"
        if not isinstance(obj, dict):
            return None, "request body must be a JSON object"
        return obj, None

    def do_POST(self) -> None:
        body, problem = self._read_body()
        path = self.path.split("?", 1)[0]
        fake = self.server.fake
        fake._record(path, {k.lower(): v for k, v in self.headers.items()}, body)
        if problem is not None or body is None:
            self._send_error(Error(400, problem or "bad body"))
        elif path == "/v1/messages":
            self._messages(body)
        elif path == "/v1/messages/count_tokens":
            self._send_json(200, {"input_tokens": prompt_tokens(body)})
        else:
            self._not_found(path)

    def _not_found(self, path: str | None = None) -> None:
        self._send_error(
            Error(404, f"fake server: no route for {self.command} {path or self.path}")
        )

    def do_GET(self) -> None:
        self._not_found()

    do_PUT = do_DELETE = do_PATCH = do_GET

    def _messages(self, body: dict[str, Any]) -> None:
        fake = self.server.fake
        headers = {k.lower(): v for k, v in self.headers.items()}
        rejection = api_rejection(body) or _context_rejection(body, headers)
        if rejection is not None:  # refused before the model runs: no scripted reply is used
            self._send_error(Error(400, rejection, "invalid_request_error"))
            return
        prompt = _prompt(body)
        model = str(body.get("model", ""))
        refusal = fake._input_rejection(prompt, model)
        if refusal is not None:
            self._send_error(Error(400, refusal, "invalid_request_error"))
            return
        edit = _compaction_edit(body)
        trigger = (edit or {}).get("trigger") or {}
        compacting = edit is not None and prompt.total >= trigger.get(
            "value", DEFAULT_COMPACTION_TRIGGER
        )
        resp: Response | None
        if compacting and edit is not None and edit.get("pause_after_compaction"):
            resp = Reply(blocks=(), stop_reason="compaction")  # the server's own: nothing used
        else:
            resp = fake._next_response(body)
        if resp is None:
            self._send_error(Error(500, "fake server: no scripted response left", "api_error"))
            return
        if isinstance(resp, str):
            resp = reply(text(resp))
        if isinstance(resp, Error):
            self._send_error(resp)
            return
        r, limit = (resp.reply, resp.after_events) if isinstance(resp, Cut) else (resp, None)
        usage = fake._cache.usage(prompt, model)
        iterations = None
        if compacting:
            block = fake._compact(body, prompt)
            # The model then reads only the compacted context: tools, system, the summary.
            after = _prompt({**body, "messages": [{"role": "assistant", "content": [block]}]})
            compaction_usage = {"type": "compaction", **usage}
            compaction_usage["output_tokens"] = count_tokens(block["content"])
            usage = fake._cache.usage(after, model)
            iterations = [compaction_usage, {"type": "message", **usage}]
            summary = Block(
                type="compaction", text=block["content"], signature=block["encrypted_content"]
            )
            r = Reply(
                blocks=(summary, *r.blocks),
                stop_reason=r.stop_reason,
                usage=r.usage,
                delay=r.delay,
                model=r.model,
            )
        rendered = _render(
            r,
            body,
            f"msg_fake_{fake._next('msg')}",
            lambda: f"toolu_fake_{fake._next('tool')}",
            usage,
            iterations,
        )
        if body.get("stream"):
            self._stream(rendered, r.delay, limit)
        elif limit is not None:  # a cut non-streaming request: drop without a response
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        else:
            self._send_json(200, rendered.message)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeAnthropic

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (an interrupted stream, a closed kernel) is routine here.
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeAnthropic:
    """Scripted fake Messages API server. Starts on construction unless ``start=False``."""

    def __init__(self, start: bool = True) -> None:
        self._lock = threading.Lock()
        self._queue: list[Response] = []
        self._requests: list[dict[str, Any]] = []
        self._counters: dict[str, itertools.count[int]] = {}
        self.responder: Callable[[dict[str, Any]], Response] | None = None
        # Model id or family -> context window in tokens; a longer prompt is a 400.
        self.context_windows: dict[str, int] = {}
        # body -> the summary text of a server compaction (a default names what it covers).
        self.compaction_summary: Callable[[dict[str, Any]], str] | None = None
        self.compactions: list[dict[str, Any]] = []  # the compaction blocks sent, in order
        self._errors: list[Error] = []
        self._cache = _PromptCache()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    # -- lifecycle

    def start(self) -> FakeAnthropic:
        if self._httpd is not None:
            return self
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-anthropic",
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

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeAnthropic is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- scripting

    def enqueue(self, *responses: Response) -> FakeAnthropic:
        """Append responses to the FIFO queue; each /v1/messages request pops one."""
        for r in responses:
            if not isinstance(r, (Reply, Error, Cut, str)):
                raise TypeError(f"cannot enqueue {type(r).__name__}")
        with self._lock:
            self._queue.extend(responses)
        return self

    def clear(self) -> None:
        """Forget queued responses, recorded requests and errors, and the responder."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._errors.clear()
        self.responder = None

    def clear_cache(self) -> None:
        """Forget every prompt cache entry (as if their 5 minutes had passed)."""
        self._cache.clear()

    def context_window(self, model: str) -> int | None:
        """The window set for ``model`` (by id, then family) in ``context_windows``."""
        window = self.context_windows.get(model)
        if window is None:
            window = self.context_windows.get(api_model_family(model) or "")
        return window

    @property
    def pending(self) -> int:
        """Number of scripted responses not yet consumed."""
        with self._lock:
            return len(self._queue)

    # -- inspection

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Snapshot of recorded requests: ``{"path", "headers", "body"}`` dicts."""
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[Error]:
        """Every error answered so far (scripted or the API's own refusals), in order."""
        with self._lock:
            return list(self._errors)

    @property
    def last_body(self) -> dict[str, Any] | None:
        with self._lock:
            return self._requests[-1]["body"] if self._requests else None

    # -- internals (called from handler threads)

    def _record_error(self, e: Error) -> None:
        with self._lock:
            self._errors.append(e)

    def _record(self, path: str, headers: dict[str, str], body: dict[str, Any] | None) -> None:
        with self._lock:
            self._requests.append({"path": path, "headers": headers, "body": body})

    def _next_response(self, body: dict[str, Any]) -> Response | None:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
        responder = self.responder
        return responder(body) if responder is not None else None

    def _input_rejection(self, prompt: _Prompt, model: str) -> str | None:
        """The 400 message for a prompt the API refuses as sent, or None."""
        if len(prompt.breakpoints) > MAX_CACHE_BREAKPOINTS:
            return (
                f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be "
                f"provided. Found {len(prompt.breakpoints)}."
            )
        with self._lock:
            issued = list(self.compactions)
        for m, b, block in prompt.blocks:
            if isinstance(block, dict) and block.get("type") == "compaction":
                sent = {k: v for k, v in block.items() if k != "cache_control"}
                if sent not in issued:
                    return (
                        f"messages.{m}.content.{b}: the compaction block must be sent back "
                        "exactly as the API returned it"
                    )
        window = self.context_window(model)
        if window is not None and prompt.total > window:
            return f"prompt is too long: {prompt.total} tokens > {window} maximum"
        return None

    def _compact(self, body: dict[str, Any], prompt: _Prompt) -> dict[str, Any]:
        """A new compaction block summarising the prompt (remembered, to check it later)."""
        n = self._next("compaction")
        summary_of = self.compaction_summary
        summary = (
            summary_of(body)
            if summary_of is not None
            else f"Summary {n} of the conversation so far: {len(prompt.blocks)} blocks, "
            f"{prompt.total} tokens."
        )
        block = {"type": "compaction", "content": summary, "encrypted_content": f"fake-opaque-{n}"}
        with self._lock:
            self.compactions.append(block)
        return block

    def _next(self, kind: str) -> int:
        with self._lock:
            counter = self._counters.setdefault(kind, itertools.count(1))
            return next(counter)
