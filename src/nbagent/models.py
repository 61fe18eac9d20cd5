"""What nbagent knows about each model: limits, thinking, effort, caching and prices.

One table, keyed by normalised model id, answers every per-model question a session
asks (context window, maximum output, adaptive thinking and its display default,
effort levels, minimum cacheable prefix, prices). Figures come from the Claude API
reference (`shared/reference/claude-api/`: SKILL.md "Current Models", "Thinking &
Effort"; shared/models.md; shared/prompt-caching.md). Rows the reference lists
without a figure (older models' prices, windows and output limits) carry the public
figures of Anthropic's model and pricing pages; they are marked below. Rows for models
reached through OpenAI-compatible endpoints (OpenAI, Gemini, local servers) carry their
vendors' public list prices at the time of writing, and say which tool protocol the model
needs: "native" tool calling, or "xml" (tools described in the prompt) for models without it.

An unknown model gets conservative settings (no thinking, no effort, a 200k window,
a modest output limit) and an unknown cost: `None`, never a misleading $0.

Stdlib only: this module is imported at the start of every turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

ThinkingDisplay = Literal["summarized", "omitted"]
ToolProtocol = Literal["native", "xml"]

# The `thinking` setting a user picks. "adaptive" is kept as an alias of
# "summarized" so the documented `Agent(thinking="adaptive")` keeps working.
THINKING_SETTINGS: tuple[str, ...] = ("summarized", "adaptive", "omitted", "off")
THINKING_ALIASES: dict[str, str] = {"adaptive": "summarized"}

# Every effort level the API knows, lowest first.
EFFORT_LEVELS: tuple[str, ...] = ("low", "medium", "high", "xhigh", "max")
API_DEFAULT_EFFORT = "high"  # omitting output_config.effort means "high"

# Prompt caching (5-minute TTL, the one nbagent uses): writes 1.25x, reads 0.1x input.
CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1

_MTOK = 1_000_000


@dataclass(frozen=True)
class ModelInfo:
    """Capabilities and prices of one model. Prices are US dollars per million tokens."""

    id: str
    known: bool
    context_window: int
    max_output_tokens: int
    adaptive_thinking: bool
    # What the API streams when `thinking.display` is not sent; None without adaptive thinking.
    thinking_display_default: ThinkingDisplay | None
    # Levels of `output_config.effort` the model takes; empty: the model rejects effort.
    effort_levels: tuple[str, ...]
    min_cacheable_tokens: int
    input_price: float | None
    output_price: float | None
    # Thinks even when no `thinking` parameter is sent (Fable 5, Mythos 5), and rejects
    # `{"type": "disabled"}`: "off" can only mean "not sent" there.
    thinking_always_on: bool = False
    # Takes the beta server-side compaction edit `compact_20260112` (SKILL.md "Compaction").
    server_compaction: bool = False
    # "xml": the model has no native tool calling; tools go through the prompt
    # (`tool_protocol="auto"` picks it from here).
    tool_protocol: ToolProtocol = "native"
    # Price of a cached input token as a share of an uncached one: 0.1 on Claude and
    # GPT-5, 0.25 on GPT-4.1, o3 and Gemini 2.5, 0.5 on GPT-4o.
    cache_read_factor: float = CACHE_READ_FACTOR

    @property
    def cache_write_price(self) -> float | None:
        return None if self.input_price is None else self.input_price * CACHE_WRITE_FACTOR

    @property
    def cache_read_price(self) -> float | None:
        return None if self.input_price is None else self.input_price * self.cache_read_factor


_ALL_EFFORTS = EFFORT_LEVELS
_NO_XHIGH = ("low", "medium", "high", "max")
_NO_EFFORT: tuple[str, ...] = ()


def _row(
    family: str,
    window: int,
    max_out: int,
    adaptive: bool,
    display: ThinkingDisplay | None,
    efforts: tuple[str, ...],
    min_cache: int,
    price_in: float,
    price_out: float,
    always_on: bool = False,
    compaction: bool = False,
) -> ModelInfo:
    return ModelInfo(
        id=family,
        known=True,
        context_window=window,
        max_output_tokens=max_out,
        adaptive_thinking=adaptive,
        thinking_display_default=display,
        effort_levels=efforts,
        min_cacheable_tokens=min_cache,
        input_price=price_in,
        output_price=price_out,
        thinking_always_on=always_on,
        server_compaction=compaction,
    )


def _compat_row(
    family: str,
    window: int,
    max_out: int,
    efforts: tuple[str, ...],
    price_in: float | None,
    price_out: float | None,
    cache_read: float = CACHE_READ_FACTOR,
    protocol: ToolProtocol = "native",
) -> ModelInfo:
    """A model reached through an OpenAI-compatible endpoint: no Anthropic thinking; its
    reasoning effort (if any) is sent as `reasoning_effort`; caching is automatic."""
    return ModelInfo(
        id=family,
        known=True,
        context_window=window,
        max_output_tokens=max_out,
        adaptive_thinking=False,
        thinking_display_default=None,
        effort_levels=efforts,
        min_cacheable_tokens=1024,
        input_price=price_in,
        output_price=price_out,
        tool_protocol=protocol,
        cache_read_factor=cache_read,
    )


_1M = 1_000_000
_200K = 200_000
_REASONING = ("low", "medium", "high")  # OpenAI's and Gemini's `reasoning_effort` levels

# fmt: off
_TABLE: tuple[ModelInfo, ...] = (
    # family              window max_out adaptive display     efforts     cache  $in    $out
    # Server-side compaction (compaction=True): Fable 5, Opus 4.8/4.7/4.6, Sonnet 4.6.
    _row("claude-fable-5",    _1M, 128_000, True, "omitted",    _ALL_EFFORTS, 2048, 10.0, 50.0,
         always_on=True, compaction=True),
    _row("claude-mythos-5",   _1M, 128_000, True, "omitted",    _ALL_EFFORTS, 2048, 10.0, 50.0,
         always_on=True),
    _row("claude-opus-4-8",   _1M, 128_000, True, "omitted",    _ALL_EFFORTS, 4096, 5.0, 25.0,
         compaction=True),
    _row("claude-opus-4-7",   _1M, 128_000, True, "omitted",    _ALL_EFFORTS, 4096, 5.0, 25.0,
         compaction=True),
    _row("claude-opus-4-6",   _1M, 128_000, True, "summarized", _NO_XHIGH,    4096, 5.0, 25.0,
         compaction=True),
    _row("claude-sonnet-4-6", _1M, 64_000,  True, "summarized", _NO_XHIGH,    2048, 3.0, 15.0,
         compaction=True),
    _row("claude-haiku-4-5",  _200K, 64_000, False, None,       _NO_EFFORT,   4096, 1.0, 5.0),
    # Legacy and deprecated: the reference names them (and their effort support and cache
    # minimums) but not their window, output limit or price; those are the public figures.
    _row("claude-opus-4-5",   _200K, 64_000, False, None, ("low", "medium", "high"), 4096,
         5.0, 25.0),
    _row("claude-opus-4-1",   _200K, 32_000, False, None,       _NO_EFFORT,   1024, 15.0, 75.0),
    _row("claude-opus-4-0",   _200K, 32_000, False, None,       _NO_EFFORT,   1024, 15.0, 75.0),
    _row("claude-opus-4",     _200K, 32_000, False, None,       _NO_EFFORT,   1024, 15.0, 75.0),
    _row("claude-sonnet-4-5", _200K, 64_000, False, None,       _NO_EFFORT,   1024, 3.0, 15.0),
    _row("claude-sonnet-4-0", _200K, 64_000, False, None,       _NO_EFFORT,   1024, 3.0, 15.0),
    _row("claude-sonnet-4",   _200K, 64_000, False, None,       _NO_EFFORT,   1024, 3.0, 15.0),
    _row("claude-3-haiku",    _200K, 4_096,  False, None,       _NO_EFFORT,   2048, 0.25, 1.25),
    # Retired on the Claude API; still reachable through some cloud providers.
    _row("claude-3-7-sonnet", _200K, 64_000, False, None,       _NO_EFFORT,   1024, 3.0, 15.0),
    _row("claude-3-5-haiku",  _200K, 8_192,  False, None,       _NO_EFFORT,   2048, 0.8, 4.0),
    _row("claude-3-5-sonnet", _200K, 8_192,  False, None,       _NO_EFFORT,   1024, 3.0, 15.0),
    _row("claude-3-opus",     _200K, 4_096,  False, None,       _NO_EFFORT,   1024, 15.0, 75.0),
    _row("claude-3-sonnet",   _200K, 4_096,  False, None,       _NO_EFFORT,   1024, 3.0, 15.0),
    # OpenAI (ids with version dots become dashes: "gpt-4.1" -> "gpt-4-1").
    # family                    window     max_out  efforts     $in   $out   cached
    _compat_row("gpt-5-1",      400_000,   128_000, _REASONING, 1.25, 10.0,  0.1),
    _compat_row("gpt-5",        400_000,   128_000, _REASONING, 1.25, 10.0,  0.1),
    _compat_row("gpt-5-mini",   400_000,   128_000, _REASONING, 0.25, 2.0,   0.1),
    _compat_row("gpt-5-nano",   400_000,   128_000, _REASONING, 0.05, 0.40,  0.1),
    _compat_row("gpt-5-pro",    400_000,   272_000, ("high",),  15.0, 120.0, 1.0),
    _compat_row("gpt-5-1-codex-mini", 400_000, 128_000, _REASONING, 0.25, 2.0, 0.1),
    _compat_row("gpt-4-1",      1_047_576, 32_768,  _NO_EFFORT, 2.0,  8.0,   0.25),
    _compat_row("gpt-4-1-mini", 1_047_576, 32_768,  _NO_EFFORT, 0.40, 1.60,  0.25),
    _compat_row("gpt-4-1-nano", 1_047_576, 32_768,  _NO_EFFORT, 0.10, 0.40,  0.25),
    _compat_row("gpt-4o",       128_000,   16_384,  _NO_EFFORT, 2.50, 10.0,  0.5),
    _compat_row("gpt-4o-mini",  128_000,   16_384,  _NO_EFFORT, 0.15, 0.60,  0.5),
    _compat_row("o3",           200_000,   100_000, _REASONING, 2.0,  8.0,   0.25),
    _compat_row("o3-mini",      200_000,   100_000, _REASONING, 1.10, 4.40,  0.5),
    _compat_row("o3-pro",       200_000,   100_000, _REASONING, 20.0, 80.0,  1.0),
    _compat_row("o4-mini",      200_000,   100_000, _REASONING, 1.10, 4.40,  0.25),
    # Gemini (OpenAI-compatible endpoint), prompts up to 200k tokens.
    _compat_row("gemini-2-5-pro",        1_048_576, 65_536, _REASONING, 1.25, 10.0, 0.25),
    _compat_row("gemini-2-5-flash",      1_048_576, 65_536, _REASONING, 0.30, 2.50, 0.25),
    _compat_row("gemini-2-5-flash-lite", 1_048_576, 65_536, _REASONING, 0.10, 0.40, 0.25),
    # Local models without native tool calling (Ollama's names): the xml protocol.
    # Run locally, so no price.
    _compat_row("gemma2",       8_192,     8_192,   _NO_EFFORT, None, None, protocol="xml"),
    _compat_row("gemma3",       131_072,   8_192,   _NO_EFFORT, None, None, protocol="xml"),
    _compat_row("phi3",         131_072,   4_096,   _NO_EFFORT, None, None, protocol="xml"),
    _compat_row("phi4",         16_384,    4_096,   _NO_EFFORT, None, None, protocol="xml"),
    _compat_row("llama2",       4_096,     4_096,   _NO_EFFORT, None, None, protocol="xml"),
    _compat_row("codellama",    16_384,    4_096,   _NO_EFFORT, None, None, protocol="xml"),
)
# fmt: on

# Longest family first, so "claude-opus-4-8" wins over "claude-opus-4".
_BY_FAMILY: tuple[ModelInfo, ...] = tuple(sorted(_TABLE, key=lambda m: -len(m.id)))

_UNKNOWN = ModelInfo(
    id="",
    known=False,
    context_window=_200K,
    # Modest, so a request to a small local model is not refused for its max_tokens.
    max_output_tokens=8_192,
    adaptive_thinking=False,
    thinking_display_default=None,
    effort_levels=_NO_EFFORT,
    # The lowest minimum any model has: a breakpoint under a model's real minimum costs
    # nothing (the prefix just is not cached), while a higher guess would skip caching.
    min_cacheable_tokens=1024,
    input_price=None,
    output_price=None,
)

# --------------------------------------------------------------------------- ids

# Cloud region prefixes of Bedrock inference profiles ("us.anthropic.claude-...").
_REGION_PREFIXES = ("us-gov.", "us.", "eu.", "apac.", "global.", "jp.", "au.", "ca.")
_DATE_SUFFIX = re.compile(r"-\d{8}$")  # snapshot date "-20251001"
_TRAILERS = (
    re.compile(r"\[[^\]]*\]$"),  # "[1m]": a context-window tag
    re.compile(r"-v\d+(:\d+)?$"),  # Bedrock "-v1:0"
    re.compile(r"@.*$"),  # Vertex "@20251001"
    re.compile(r":(thinking|beta|free|extended|nitro|floor|online)$"),  # router variants
    _DATE_SUFFIX,
    re.compile(r"-latest$"),
)
# "openai:..." / "anthropic:..." naming; a letter must follow so "-v1:0" never matches.
_PROVIDER_PREFIX = re.compile(r"^[a-z][a-z0-9_-]*:(?=[a-z])")
_VERSION_DOT = re.compile(r"(?<=\d)\.(?=\d)")  # "claude-opus-4.8" -> "claude-opus-4-8"


def normalize_model_id(model: str) -> str:
    """The table key of a model id as a provider, router or cloud spells it.

    `us.anthropic.claude-opus-4-8-v1:0`, `anthropic/claude-opus-4-8`,
    `claude-opus-4-8@20260101` and `claude-opus-4.8` all become `claude-opus-4-8`.
    This serves the model table only; it does not choose a provider.
    """
    s = model.strip().lower()
    s = s.rsplit("/", 1)[-1]  # "anthropic/...", "openrouter/anthropic/...", ARNs, Vertex paths
    while True:
        before = s
        for pattern in _TRAILERS:
            s = pattern.sub("", s)
        if s == before:
            break
    # After the trailers, so "-v1:0" and ":thinking" are gone before a "provider:" is looked for.
    s = _PROVIDER_PREFIX.sub("", s, count=1)
    for region in _REGION_PREFIXES:
        if s.startswith(region):
            s = s[len(region) :]
            break
    s = s.removeprefix("anthropic.")
    s = _VERSION_DOT.sub("-", s)
    return _DATE_SUFFIX.sub("", s)  # a date can surface once the version dots are dashes


def _matches(model_id: str, family: str) -> bool:
    # "claude-opus-4-8-fast" is Opus 4.8, but "claude-opus-4-10" is not Opus 4 or 4.1.
    if model_id == family:
        return True
    if not model_id.startswith(family + "-"):
        return False
    return not model_id[len(family) + 1 : len(family) + 2].isdigit()


def model_info(model: str) -> ModelInfo:
    """The table row of `model`'s family (longest matching prefix), or conservative values."""
    model_id = normalize_model_id(model)
    for info in _BY_FAMILY:
        if _matches(model_id, info.id):
            return replace(info, id=model_id)
    return replace(_UNKNOWN, id=model_id)


def unknown_model_notice(model: str) -> str | None:
    """One line for a model the table does not know, else None."""
    info = model_info(model)
    if info.known:
        return None
    return (
        f"Model {model!r} is not in nbagent's model table: cost shown as unknown; "
        f"conservative limits ({info.context_window:,}-token context, "
        f"{info.max_output_tokens:,} output tokens, no thinking or effort)."
    )


# --------------------------------------------------------------------------- cost


def cost_usd(
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
) -> float | None:
    """Dollar cost of one response's usage, or None when the model's prices are unknown."""
    info = model_info(model)
    if info.input_price is None or info.output_price is None:
        return None
    return (
        input_tokens * info.input_price
        + cache_creation_input_tokens * info.input_price * CACHE_WRITE_FACTOR
        + cache_read_input_tokens * info.input_price * info.cache_read_factor
        + output_tokens * info.output_price
    ) / _MTOK


# --------------------------------------------------------------------------- request options


def resolve_thinking_setting(setting: str) -> str:
    """The canonical thinking setting ("adaptive" -> "summarized"); ValueError if invalid."""
    key = setting.strip().lower()
    if key not in THINKING_SETTINGS:
        raise ValueError(f"thinking must be one of {', '.join(THINKING_SETTINGS)}; got {setting!r}")
    return THINKING_ALIASES.get(key, key)


def thinking_param(info: ModelInfo, setting: str) -> dict[str, str] | None:
    """The `thinking` request parameter for `setting`, or None to send none.

    The display is always explicit: on Opus 4.7+ and Fable 5 the API's default is
    "omitted", which would stream empty thinking blocks.
    """
    resolved = resolve_thinking_setting(setting)
    if resolved == "off" or not info.adaptive_thinking:
        return None
    return {"type": "adaptive", "display": resolved}


def effort_param(info: ModelInfo, effort: str | None) -> tuple[str | None, str | None]:
    """(effort to send or None, a one-line notice when a requested effort is dropped)."""
    if effort is None or not effort.strip():
        return None, None
    level = effort.strip().lower()
    if not info.effort_levels:
        return None, f"effort {effort!r} not sent: {info.id or 'this model'} does not take effort."
    if level not in info.effort_levels:
        return None, (
            f"effort {effort!r} not sent: {info.id} takes {', '.join(info.effort_levels)}."
        )
    return level, None


def describe_request_options(info: ModelInfo, thinking: str, effort: str | None) -> dict[str, str]:
    """What a request for `info` actually carries for these settings, for `%agent config`."""
    param = thinking_param(info, thinking)
    if param is not None:
        thinking_text = f"adaptive, display {param['display']}"
    elif info.thinking_always_on:
        thinking_text = (
            f"not sent ({info.id} always thinks; display {info.thinking_display_default})"
        )
    elif not info.adaptive_thinking:
        thinking_text = f"off ({info.id or 'model'} has no adaptive thinking)"
    else:
        thinking_text = "off"

    value, notice = effort_param(info, effort)
    if value is not None:
        effort_text = value
    elif notice is not None:
        effort_text = notice.removesuffix(".")
    elif info.effort_levels:
        effort_text = f"not sent (API default: {API_DEFAULT_EFFORT})"
    else:
        effort_text = "not sent (model takes no effort)"
    return {"thinking": thinking_text, "effort": effort_text}
