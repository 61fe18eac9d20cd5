"""Context that never dead-ends: measure each request, compact before the window is full.

Before each request the session's `SessionContext.prepare` estimates the request
(`estimate.ContextMeter`: the last request's size as the API counted it, plus the
blocks appended since). Then, by the turn's `ContextPolicy`:

- server: the request carries the API's compaction edit, and the API compacts at
  the trigger (`server_compaction`); the client steps in only when a single step
  would overflow the window;
- client: at the trigger the conversation is compacted here
  (`client_compaction`: placeholders for large old outputs and images, then one
  summarisation request that reads the cached prefix);
- off: measured (for `%agent context`), never compacted.

A `prompt is too long` error is recovered from once with a compaction
(`SessionContext.recover`), and `compact_now` compacts on demand.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..events import Event, Notice, Usage
from ..history import since_last_compaction
from ..models import model_info
from ..providers.error_text import api_message
from ..redact import current_redactor
from .client_compaction import (
    KEEP_SHARE,
    PRUNED_ENOUGH_SHARE,
    drop_oldest,
    is_prompt_too_long,
    prune,
    split_index,
    summary_of,
    summary_request,
    too_long_counts,
    with_summary,
)
from .estimate import (
    IMAGE_TOKENS,
    ContextMeter,
    block_tokens,
    blocks_of,
    fixed_tokens,
    messages_tokens,
    request_tokens,
)
from .server_compaction import (
    ContextPolicy,
    context_policy,
    has_compaction,
    refuses_context_management,
)

if TYPE_CHECKING:
    from ..providers.base import ModelResponse

__all__ = [
    "CompactionOutcome",
    "ContextMeter",
    "ContextPolicy",
    "ContextReport",
    "SessionContext",
    "compact_now",
    "context_policy",
    "context_report",
    "is_prompt_too_long",
    "meter_of",
]

# Server mode: the API compacts at its trigger; the client steps in only this close
# to the window (one step, a huge tool output, would overflow it).
SERVER_SAFETY_SHARE = 0.95
# A request is sent only if its estimate is under this share of the window.
FIT_SHARE = 0.9
# Fewer older messages than this are not worth a summary request.
MIN_SUMMARISED = 2
# After a compaction that stayed above the trigger, the conversation must grow by this
# share of the window before the next one.
REGROWTH_SHARE = 0.1


@dataclass
class CompactionOutcome:
    """What one compaction did."""

    before: int  # estimated tokens of the next request, before
    after: int  # and after
    summarised: int = 0  # messages replaced by the summary
    placeholders: int = 0  # tool outputs, documents and images replaced by placeholders
    dropped: int = 0  # messages dropped unsummarised (they did not fit a summary request)
    usage: Usage | None = None  # the summarisation request's
    events: list[Event] = field(default_factory=list)

    def text(self) -> str:
        done = []
        if self.summarised:
            done.append(f"{self.summarised} older messages summarised")
        if self.placeholders:
            done.append(
                f"{self.placeholders} large tool outputs or images replaced by placeholders"
            )
        if self.dropped:
            done.append(f"{self.dropped} oldest messages dropped")
        detail = f" ({'; '.join(done)})" if done else ""
        return (
            f"Compacted the conversation: about {self.before:,} -> {self.after:,} tokens{detail}."
        )


@dataclass
class SessionContext:
    """The context management of one turn: what the loop calls around each request.

    `history` is the session's conversation, rewritten in place by a compaction;
    `build_request(final)` gives the request the loop would send now.
    """

    history: list[dict[str, Any]]
    policy: ContextPolicy
    meter: ContextMeter
    build_request: Callable[[bool], dict[str, Any]]
    provider: Any  # a `providers.base.Provider`
    record_usage: Callable[[ModelResponse], Usage]
    # The endpoint refused server-side context management: the session's client-side
    # policy from now on, and the endpoint's name for the notice.
    on_refused: Callable[[], tuple[ContextPolicy, str]] | None = None
    # Why a request must not be sent (the turn's and session's budgets), or None.
    check_budget: Callable[[dict[str, Any]], str | None] | None = None

    # -- around each request (called by the loop)

    def prepare(self, final: bool) -> Generator[Event, None, None]:
        """Measure the next request; compact first when it passes the trigger."""
        params = self.build_request(final)
        measured = self.meter.measure(self.history, params)
        if self.policy.mode != "off" and measured.tokens >= self._limit():
            window = self.policy.window
            yield from self.compact(
                reason=f"the next request would be about {measured.tokens:,} of the "
                f"model's {window:,} tokens"
            )
            params = self.build_request(final)
            self.meter.measure(self.history, params)
        self.meter.expect(self.history, params)

    def observe(self, response: ModelResponse) -> Generator[Event, None, None]:
        """A response arrived: its input count is the measure of the next request."""
        total = _context_size(response)
        compacted = has_compaction(response.content)
        before = self.meter.last.tokens if self.meter.last is not None else None
        self.meter.settle(total, compacted)
        if compacted:
            was = f"about {before:,}" if before is not None else "the conversation"
            yield Notice(
                f"The API compacted the conversation: {was} -> {total:,} tokens "
                "(a summary replaces the earlier messages).",
                "info",
            )

    def recover(self, exc: BaseException) -> Generator[Event, None, bool]:
        """After `prompt is too long`: compact, and say whether to send the request again.
        After a refusal of the server-side context management: send it again without."""
        if (
            self.on_refused is not None
            and (self.policy.server or self.policy.context_editing)
            and refuses_context_management(exc)
        ):
            self.policy, endpoint = self.on_refused()
            yield Notice(
                f"{endpoint} does not take server-side context management "
                f"({_first_line(api_message(exc))}): sent again without it; the conversation "
                "is compacted "
                "on the client from now on.",
                "warning",
            )
            return True
        if self.policy.mode == "off" or not is_prompt_too_long(exc):
            return False
        counts = too_long_counts(exc)
        limit, scale = None, 1.0
        said = "The request was too long for the model"
        if counts is not None:
            sent, limit = counts
            said += f" ({sent:,} tokens, at most {limit:,})"
            estimate = request_tokens(self.build_request(False))
            if estimate:
                scale = max(1.0, sent / estimate)  # the estimate was low: correct it from here
        yield Notice(f"{said}: compacting the conversation and trying once more.", "warning")
        outcome = yield from self.compact(reason="recovery", limit=limit, scale=scale)
        return outcome is not None

    def _limit(self) -> int:
        share = SERVER_SAFETY_SHARE if self.policy.server else None
        limit = int(self.policy.window * share) if share else self.policy.trigger
        floor = self.meter.floor
        if floor is not None:
            limit = max(limit, floor + int(self.policy.window * REGROWTH_SHARE))
        return limit

    # -- compaction

    def compact(
        self,
        *,
        reason: str,
        limit: int | None = None,
        scale: float = 1.0,
        summarise: bool = False,
    ) -> Generator[Event, None, CompactionOutcome | None]:
        """Compact the history in place (see `client_compaction`); None if nothing could be.

        `limit` is the window to fit (the API's maximum after a refusal), `scale` corrects
        the estimate, and `summarise` skips the placeholders-only shortcut (on demand).
        """
        history = self.history
        params = self.build_request(False)
        fixed = fixed_tokens(params)

        def size(messages: list[dict[str, Any]]) -> int:
            return int((fixed + messages_tokens(since_last_compaction(messages))) * scale)

        window = limit or self.policy.window
        fit = int(window * FIT_SHARE)
        before = size(history)
        start = len(history) - len(since_last_compaction(history))
        # On demand only the last exchange is kept; otherwise a share of the window.
        keep = 0 if summarise else int(window * KEEP_SHARE / scale)
        split = split_index(history, start, keep)
        pruned, replaced = prune(history, split)
        if split - start < MIN_SUMMARISED:
            # No older turns to summarise: only placeholders, everywhere but the last message.
            pruned, replaced = prune(history, len(history) - 1)
            if not replaced:
                return None
            return (yield from self._done(CompactionOutcome(before, 0, 0, replaced), pruned, size))
        if not summarise and replaced and size(pruned) <= window * PRUNED_ENOUGH_SHARE:
            return (yield from self._done(CompactionOutcome(before, 0, 0, replaced), pruned, size))

        yield Notice(f"Compacting the conversation ({reason})...", "info")
        request = summary_request(params)
        dropped = 0
        if int(request_tokens(request) * scale) > fit:
            # The conversation does not fit a summary request as it is: placeholders for
            # the old outputs, and the oldest messages left out if that is not enough.
            old = since_last_compaction(pruned[:split])
            excess = int(request_tokens(summary_request(params, old)) * scale) - fit
            if excess > 0:
                dropped = drop_oldest(old, len(old), int(excess / scale) + 1)
                old = _starting_with_user(old[dropped:])
            request = summary_request(params, old)
        else:
            replaced = 0  # the exact conversation is summarised: nothing replaced
        over = self.check_budget(request) if self.check_budget is not None else None
        if over:
            # No summary beyond the budget: placeholders only; the turn's next request
            # meets the same check.
            pruned, replaced = prune(history, len(history) - 1)
            why = over.removeprefix("Stopped: ")
            yield Notice(f"Compacted with placeholders, no summary request: {why}", "warning")
            outcome = CompactionOutcome(before, 0, 0, replaced)
            return (yield from self._done(outcome, pruned, size))
        try:
            response = _complete(self.provider, request)
        except Exception as exc:
            if not is_prompt_too_long(exc):
                raise
            # The estimate was low even so: keep only placeholders, the turn goes on.
            pruned, replaced = prune(history, len(history) - 1)
            outcome = CompactionOutcome(before, 0, 0, replaced)
            return (yield from self._done(outcome, pruned, size))
        usage = self.record_usage(response)
        yield usage
        summary = summary_of(response.content)
        if summary is not None:
            summary = current_redactor().redact(summary)  # model text, kept like the loop's
        if summary is None:
            pruned, replaced = prune(history, len(history) - 1)
            yield Notice("The summary request returned no text: placeholders only.", "warning")
            outcome = CompactionOutcome(before, 0, 0, replaced, usage=usage)
            return (yield from self._done(outcome, pruned, size))
        compacted = with_summary(summary, history[split:])
        outcome = CompactionOutcome(before, 0, split - start, replaced, dropped, usage)
        return (yield from self._done(outcome, compacted, size))

    def _done(
        self,
        outcome: CompactionOutcome,
        compacted: list[dict[str, Any]],
        size: Callable[[list[dict[str, Any]]], int],
    ) -> Generator[Event, None, CompactionOutcome]:
        if size(compacted) > self.policy.window * FIT_SHARE:
            # The kept recent part alone is too big: its large outputs go too.
            compacted, more = prune(compacted, len(compacted))
            outcome.placeholders += more
        self.history[:] = compacted
        self.meter.forget()
        outcome.after = size(compacted)
        self.meter.floor = outcome.after
        notice = Notice(outcome.text(), "info")
        outcome.events.append(notice)
        yield notice
        return outcome


def _context_size(response: ModelResponse) -> int:
    """The input the response's context holds: the last `message` iteration's when the
    usage has iterations (after a server compaction, the compaction's own iteration is
    the summarising request, not the context), else the response's input."""
    usage = getattr(getattr(response, "raw", None), "usage", None)
    iterations = [
        i for i in getattr(usage, "iterations", None) or [] if getattr(i, "type", "") == "message"
    ]
    if iterations:
        last = iterations[-1]
        return sum(
            getattr(last, name, 0) or 0
            for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
    return (
        response.input_tokens
        + response.cache_creation_input_tokens
        + response.cache_read_input_tokens
    )


def _starting_with_user(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A request must open with the user: say that earlier messages were left out."""
    if messages and messages[0]["role"] == "user":
        return messages
    note = {"type": "text", "text": "[The earliest messages were left out to fit the window.]"}
    return [{"role": "user", "content": [note]}, *messages]


def _complete(provider: Any, params: dict[str, Any]) -> ModelResponse:
    """Send one request and return its response; its stream events are not shown."""
    stream = provider.stream(params)
    while True:
        try:
            next(stream)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


def compact_now(context: SessionContext) -> CompactionOutcome | None:
    """Compact the conversation now (`%agent compact`): placeholders and one summary
    request on the client, on every model (the API's on-demand compaction block could
    not be sent back together with the compaction edit of later requests). None when
    there is nothing older than the last exchange to compact."""
    events: list[Event] = []
    run = context.compact(reason="requested", summarise=True)
    while True:
        try:
            events.append(next(run))
        except StopIteration as stop:
            outcome: CompactionOutcome | None = stop.value
            break
    if outcome is not None:
        outcome.events = events
    return outcome


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class ContextReport:
    """The next request's size by kind, the window and the trigger, for `%agent context`."""

    model: str
    window: int
    mode: str  # server, client or off
    trigger: int
    tokens: int  # the next request, estimated from the last measured one when there is one
    measured: int | None  # the last request as the API counted it
    system_and_tools: int
    conversation: int
    tool_results: int
    images: int  # tokens
    image_count: int
    messages: int

    @property
    def share(self) -> float:
        return self.tokens / self.window if self.window else 0.0

    def lines(self) -> list[str]:
        if self.mode == "off":
            when = "compaction is off"
        else:
            where = "by the API" if self.mode == "server" else "on the client"
            when = f"compacts {where} at {self.trigger:,} ({self.trigger / self.window:.0%})"
        measured = (
            f"last request counted by the API: {self.measured:,}"
            if self.measured is not None
            else "estimated (no request measured yet)"
        )
        return [
            f"Context: about {self.tokens:,} of {self.window:,} tokens ({self.share:.0%}), "
            f"{self.model}; {when}.",
            f"  system and tools  {self.system_and_tools:>10,}",
            f"  conversation      {self.conversation:>10,}  ({self.messages} messages)",
            f"  tool results      {self.tool_results:>10,}",
            f"  images            {self.images:>10,}  ({self.image_count} images)",
            f"  ({measured})",
        ]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def context_report(
    *,
    history: list[dict[str, Any]],
    system: str | list[dict[str, Any]],
    tools: list[dict[str, Any]],
    model: str,
    compaction: str = "auto",
    compact_at: float = 0.8,
    meter: ContextMeter | None = None,
) -> ContextReport:
    """The context of the next request: `Session.history`, `Session.system`,
    `Session.tool_runner.params()` and the settings' model, compaction and compact_at."""
    policy = context_policy(model, compaction, compact_at)
    params: dict[str, Any] = {"system": system, "tools": tools, "messages": history}
    view = since_last_compaction(history)
    conversation = tool_results = images = 0
    for message in view:
        for block in blocks_of(message):
            if not isinstance(block, dict):
                conversation += block_tokens(block)
                continue
            kind = block.get("type")
            if kind == "image":
                images += 1
            elif kind == "tool_result":
                content = block.get("content")
                inner = content if isinstance(content, list) else [content]
                for item in inner:
                    if isinstance(item, dict) and item.get("type") == "image":
                        images += 1
                    else:
                        tool_results += block_tokens(item)
            else:
                conversation += block_tokens(block)
    fixed = fixed_tokens(params)
    whole = fixed + conversation + tool_results + images * IMAGE_TOKENS
    measured = meter.measure(history, params) if meter is not None else None
    return ContextReport(
        model=model_info(model).id or model,
        window=policy.window,
        mode=policy.mode,
        trigger=policy.trigger,
        tokens=measured.tokens if measured is not None else whole,
        measured=measured.measured if measured is not None else None,
        system_and_tools=fixed,
        conversation=conversation,
        tool_results=tool_results,
        images=images * IMAGE_TOKENS,
        image_count=images,
        messages=len(view),
    )


def meter_of(owner: Any) -> ContextMeter:
    """The `ContextMeter` kept on a session (`owner.context_meter`), made on first use."""
    meter = getattr(owner, "context_meter", None)
    if not isinstance(meter, ContextMeter):
        meter = ContextMeter()
        owner.context_meter = meter
    return meter


def _first_line(message: str, limit: int = 160) -> str:
    text = (message.strip().splitlines() or [""])[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"
