"""The agent loop: a resumable state machine that yields events.

`drive(turn, run)` advances a `Run` until the model is done, or until it
must wait for someone: an approval (`awaiting_approval`) or tool results the
caller executes itself (`awaiting_tool_results`). Calling `drive` again with the
same `Run` picks up where it stopped. Whatever happens (API error,
KeyboardInterrupt, a consumer that stops iterating), the history it leaves is
a valid Messages API history.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import NBAgentError, ReplayMismatchError
from .events import (
    ApprovalRequest,
    ErrorEvent,
    Event,
    Notice,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
    ToolInputDelta,
    ToolOutput,
    ToolResultEvent,
    TurnEnd,
    Usage,
)
from .history import (
    append_user_content,
    text_of,
    tool_result_block,
    unanswered_tool_calls,
)
from .providers.base import take_partial
from .providers.error_text import (
    api_message,
    connection_reason,
    endpoint_of,
    never_connected,
    sentences,
)
from .redact import Redactor, StreamRedactor, current_redactor

if TYPE_CHECKING:
    from .config import Settings
    from .context import SessionContext
    from .permissions import PermissionPolicy
    from .providers.base import ModelResponse, Provider
    from .tools.runner import ToolRunner

AWAITING_APPROVAL = "awaiting_approval"
AWAITING_TOOL_RESULTS = "awaiting_tool_results"


@dataclass
class Turn:
    """The collaborators one turn works with, handed to the loop by the session.

    `history` is the conversation, changed in place; `settings` are this turn's
    resolved options (taken once, at the turn's start).
    """

    provider: Provider
    tools: ToolRunner
    policy: PermissionPolicy
    history: list[dict[str, Any]]
    settings: Settings
    build_request: Callable[[bool], dict[str, Any]]  # final? -> messages.create params
    record_usage: Callable[[ModelResponse], Usage]  # its Usage, added to the session's
    approve: Callable[[ToolCall], str] | None = None
    stop_requested: threading.Event = field(default_factory=threading.Event)
    notices: deque[Notice] = field(default_factory=deque)
    # params, run -> why the request must not be sent (a budget), or None
    over_budget: Callable[[dict[str, Any], Run], str | None] | None = None
    budget_summary: Callable[[Run], str | None] | None = None
    # context (issue 10): measures each request, compacts before the window is full and
    # after a `prompt is too long` refusal; None: no context management.
    context: SessionContext | None = None

    def drain_notices(self) -> Generator[Notice, None, None]:
        while self.notices:
            yield self.notices.popleft()


@dataclass
class Run:
    """The state of one user turn, kept between suspensions."""

    execute_tools: bool = True
    rounds: int = 0  # rounds of tool use so far
    results: dict[str, ToolOutput] = field(default_factory=dict)
    decisions: dict[str, str] = field(default_factory=dict)
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    text: str = ""
    stop_reason: str | None = None
    pending_approval: ToolCall | None = None
    error: BaseException | None = None
    partial_text: list[str] = field(default_factory=list)
    last_response: ModelResponse | None = None  # the latest model response (RunResult.raw)

    @property
    def suspended(self) -> bool:
        return self.stop_reason in (AWAITING_APPROVAL, AWAITING_TOOL_RESULTS)


def drive(turn: Turn, run: Run) -> Generator[Event, None, None]:
    run.stop_reason = None
    run.pending_approval = None
    turn.stop_requested.clear()
    if turn.context is not None and turn.over_budget is not None:
        over_budget = turn.over_budget  # a compaction's summary request is checked too
        turn.context.check_budget = lambda params: over_budget(params, run)
    try:
        yield from _advance(turn, run)
    except KeyboardInterrupt:
        _close(turn, run, "interrupted: the user stopped the turn before this tool finished")
        run.stop_reason = "interrupted"
        yield from _partial_usage(turn, run)
        yield TurnEnd("interrupted", "Interrupted by the user.")
    except GeneratorExit:
        # The consumer stopped iterating (e.g. an interrupt in a renderer): keep the
        # history valid; nothing more can be yielded.
        if not run.suspended:
            _close(turn, run, "interrupted: the turn was stopped before this tool finished")
            run.stop_reason = run.stop_reason or "interrupted"
            for _ in _partial_usage(turn, run):
                pass
        raise
    except Exception as exc:
        if not _is_api_or_config_error(exc):
            # A bug or an unexpected failure: answer the open calls first, so the
            # history is valid whatever the caller does with the exception.
            _close(turn, run, f"not run: the turn failed ({type(exc).__name__})")
            run.stop_reason = "error"
            raise
        _close(turn, run, "not run: the turn ended with an error")
        yield from _partial_usage(turn, run)
        run.stop_reason = "replay_mismatch" if isinstance(exc, ReplayMismatchError) else "error"
        run.error = exc
        message = describe_error(exc, model=turn.settings.model)
        yield ErrorEvent(message, exc)
        yield TurnEnd(run.stop_reason, message)
    except BaseException as exc:
        # SystemExit and the like (a tool called sys.exit()): leave a valid history
        # behind before it propagates.
        _close(turn, run, f"not run: the turn ended ({type(exc).__name__})")
        run.stop_reason = "interrupted"
        raise


def _advance(turn: Turn, run: Run) -> Generator[Event, None, None]:
    while True:
        open_calls = unanswered_tool_calls(turn.history)
        pending = [c for c in open_calls if c.id not in run.results]
        if open_calls:
            if not run.execute_tools:
                if pending:
                    run.stop_reason = AWAITING_TOOL_RESULTS
                    yield TurnEnd(AWAITING_TOOL_RESULTS, "Waiting for tool results.")
                    return
            else:
                approved = yield from _check_permissions(turn, run, pending)
                if approved is None:
                    return
                yield from _execute(turn, run, approved)
            _answer_tool_calls(turn, run)
            run.rounds += 1

        final = run.rounds >= turn.settings.max_turns
        if final:  # caching (issue 10): asked in words; a tool_choice change loses the cache
            _ask_for_final_answer(turn)
        if turn.context is not None:  # context (issue 10): measure; compact when needed
            yield from _counted(run, turn.context.prepare(final))
        params = turn.build_request(final)
        over = turn.over_budget(params, run) if turn.over_budget is not None else None
        if over:
            # Not sent: the history ends with the last results, a valid place to stop.
            run.stop_reason = "budget"
            yield Notice(over, "warning")
            yield from _budget_note(turn, run)
            yield TurnEnd("budget", over)
            return
        run.partial_text = []
        stream = _stream_with_recovery(turn, run, params, final)  # context (issue 10)
        # Known secrets never reach a surface, even split across chunks.
        redactor = current_redactor()
        text_out, thinking_out = StreamRedactor(redactor), StreamRedactor(redactor)
        while True:
            try:
                event = next(stream)
            except StopIteration as stop:
                message = stop.value
                break
            if isinstance(event, TextDelta):
                event = TextDelta(text_out.feed(event.text))
                run.partial_text.append(event.text)
            elif isinstance(event, ThinkingDelta):
                event = ThinkingDelta(thinking_out.feed(event.text))
            else:
                yield from _flush(text_out, thinking_out, run)
                if isinstance(event, ToolInputDelta):
                    event = ToolInputDelta(event.id, redactor.redact(event.partial_json))
            if getattr(event, "text", None) != "":
                yield event
            if turn.stop_requested.is_set():
                stream.close()  # leaves the SDK's `with` block: the HTTP response is closed
                raise KeyboardInterrupt
        yield from _flush(text_out, thinking_out, run)
        run.partial_text = []

        usage = turn.record_usage(message)
        run.usage = run.usage + usage
        yield usage

        # Text the model wrote is kept redacted; thinking keeps its signed text, and
        # tool inputs stay as sent, since the tools need them.
        content = [_redact_text_block(b, redactor) for b in message.content]
        if content:
            turn.history.append({"role": "assistant", "content": content})
        text = text_of({"content": content})
        if text:
            run.text = text

        stop_reason = message.stop_reason or "end_turn"
        run.last_response = message
        calls = unanswered_tool_calls(turn.history)
        if stop_reason == "tool_use" and calls and not final:
            for call in calls:
                run.tool_calls.append(call)
                yield ToolCallEvent(shown(call))
            continue
        if stop_reason == "pause_turn":
            # A server tool paused a long turn: sending the history back resumes it.
            continue

        if calls:
            reason = "turn limit reached" if final else f"the response ended ({stop_reason})"
            _close(turn, run, f"not run: {reason}")
        notice = _stop_notice(turn, stop_reason, final)
        if notice:
            yield notice
        run.stop_reason = "max_turns" if final else stop_reason
        yield from _budget_note(turn, run)
        yield TurnEnd(run.stop_reason, notice.text if notice else "")
        return


# -- context (issue 10): the final answer, compaction around each request

FINAL_ANSWER_PROMPT = (
    "This turn has reached its limit of {n} tool rounds. Do not call any more tools: "
    "answer now from what you have."
)


def _ask_for_final_answer(turn: Turn) -> None:
    """Ask for the final answer in a user text, once. The request keeps its tools and
    tool_choice, so the cached conversation is read; any tool call the model still
    makes is answered "not run: turn limit reached"."""
    text = FINAL_ANSWER_PROMPT.format(n=turn.settings.max_turns)
    last = turn.history[-1] if turn.history else None
    if last is not None and last["role"] == "user" and isinstance(last["content"], list):
        tail = last["content"][-1] if last["content"] else None
        if isinstance(tail, dict) and tail.get("text") == text:
            return
    append_user_content(turn.history, [{"type": "text", "text": text}])


def _counted(run: Run, events: Generator[Event, None, Any]) -> Generator[Event, None, Any]:
    """Pass events on, adding their usage (a compaction's request) to the turn's."""
    while True:
        try:
            event = next(events)
        except StopIteration as stop:
            return stop.value
        if isinstance(event, Usage):
            run.usage = run.usage + event
        yield event


def _stream_with_recovery(
    turn: Turn, run: Run, params: dict[str, Any], final: bool
) -> Generator[Event, None, ModelResponse]:
    """The provider's stream; a `prompt is too long` refusal is compacted away and the
    request sent once more. The context is told each response's size."""
    try:
        message = yield from turn.provider.stream(params)
    except Exception as exc:
        if turn.context is None:
            raise
        retry = yield from _counted(run, turn.context.recover(exc))
        if not retry:
            raise
        message = yield from turn.provider.stream(turn.build_request(final))
    if turn.context is not None:
        yield from turn.context.observe(message)
    return message


def _budget_note(turn: Turn, run: Run) -> Generator[Notice, None, None]:
    """Spent against budget, shown with the turn's footer."""
    text = turn.budget_summary(run) if turn.budget_summary is not None else None
    if text:
        yield Notice(text, "info")


def _flush(
    text_out: StreamRedactor, thinking_out: StreamRedactor, run: Run
) -> Generator[Event, None, None]:
    """What the stream redactors held back, before any other event."""
    text, thinking = text_out.flush(), thinking_out.flush()
    if thinking:
        yield ThinkingDelta(thinking)
    if text:
        run.partial_text.append(text)
        yield TextDelta(text)


def _redact_text_block(block: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    if block.get("type") == "text" and isinstance(block.get("text"), str):
        return {**block, "text": redactor.redact(block["text"])}
    return block


def shown(call: ToolCall) -> ToolCall:
    """A tool call as surfaces show it: known secrets in its input redacted."""
    return ToolCall(call.id, call.name, current_redactor().redact_obj(call.input))


def _partial_usage(turn: Turn, run: Run) -> Generator[Usage, None, None]:
    """Usage of a response cut short: the tokens it used are billed all the same."""
    message = take_partial(turn.provider)
    if message is not None:
        usage = turn.record_usage(message)
        run.usage = run.usage + usage
        yield usage


def _check_permissions(
    turn: Turn, run: Run, pending: list[ToolCall]
) -> Generator[Event, None, list[ToolCall] | None]:
    """Settle each pending call's permission; None means the run is suspended."""
    approved: list[ToolCall] = []
    for call in pending:
        category = turn.tools.category(call.name)
        verdict = turn.policy.verdict(call.name, category)  # type: ignore[arg-type]
        if verdict == "ask":
            decision = run.decisions.pop(call.id, None)
            if decision is None and turn.approve is not None:
                yield ApprovalRequest(shown(call), category)
                decision = turn.approve(call)
            if decision is None:
                run.pending_approval = call
                run.stop_reason = AWAITING_APPROVAL
                yield ApprovalRequest(shown(call), category)
                yield TurnEnd(AWAITING_APPROVAL, f"Waiting for approval of {call.name}.")
                return None
            if decision == "always":
                turn.policy.remember(call.name)
            verdict = "deny" if decision == "deny" else "allow"
        if verdict == "deny":
            output = ToolOutput(turn.policy.refusal(call.name, category), is_error=True)  # type: ignore[arg-type]
            output = ToolOutput(output.content, True, "denied")
            run.results[call.id] = output
            yield ToolResultEvent(shown(call), output)
        else:
            approved.append(call)
    return approved


def _execute(turn: Turn, run: Run, calls: list[ToolCall]) -> Generator[Event, None, None]:
    for call, output, elapsed in turn.tools.run(calls):
        run.results[call.id] = output
        yield from turn.drain_notices()
        yield ToolResultEvent(shown(call), output, elapsed)
        if turn.stop_requested.is_set():
            raise KeyboardInterrupt


def _answer_tool_calls(turn: Turn, run: Run) -> None:
    calls = unanswered_tool_calls(turn.history)
    blocks = [tool_result_block(c.id, run.results.pop(c.id)) for c in calls]
    append_user_content(turn.history, blocks)


def _close(turn: Turn, run: Run, reason: str) -> None:
    """Answer every open tool call (with `reason` where no result exists) and keep
    any partial text, so the history stays valid after a failure."""
    if run.partial_text:
        text = "".join(run.partial_text)
        run.partial_text = []
        turn.history.append(
            {"role": "assistant", "content": [{"type": "text", "text": text + "\n\n[interrupted]"}]}
        )
        run.text = text
    calls = unanswered_tool_calls(turn.history)
    if calls:
        for call in calls:
            run.results.setdefault(call.id, ToolOutput(reason, is_error=True))
        _answer_tool_calls(turn, run)
    run.results.clear()


def _stop_notice(turn: Turn, stop_reason: str, final: bool) -> Notice | None:
    if final:
        return Notice(
            f"Reached the limit of {turn.settings.max_turns} tool rounds; the model answered from what it had.",
            "warning",
        )
    if stop_reason == "max_tokens":
        return Notice(
            f"The answer was cut off at max_tokens ({turn.settings.max_tokens}). "
            "Ask to continue, or raise max_tokens.",
            "warning",
        )
    if stop_reason == "refusal":
        return Notice(
            "The model declined to answer this request (stop reason: refusal).", "warning"
        )
    return None


def _is_api_or_config_error(exc: BaseException) -> bool:
    """Failures that end a turn with a one-line error: nbagent's own (a setting, a replay
    that no longer matches) and any provider SDK's API errors."""
    if isinstance(exc, NBAgentError):
        return True
    import anthropic

    if isinstance(exc, anthropic.APIError):
        return True
    if "openai" not in sys.modules:  # only a provider that used it imported it
        return False
    from .providers.openai_compat import is_openai_error

    return is_openai_error(exc)


def describe_error(exc: BaseException, model: str | None = None) -> str:
    """One line a user can act on, naming the endpoint and model tried, with known
    secrets redacted. `model` is used when the failed request does not carry one."""
    from .redact import redact

    return redact(_describe_error(exc, model))


def _describe_error(exc: BaseException, model: str | None = None) -> str:
    from .errors import NBAgentError

    if isinstance(exc, NBAgentError):  # nbagent's own errors already say what to do
        return str(exc)
    if "openai" in sys.modules:  # the same one-line messages for OpenAI-compatible APIs
        from .providers.openai_compat import describe_openai_error

        text = describe_openai_error(exc, model)
        if text is not None:
            return text
    import anthropic

    if not isinstance(exc, anthropic.APIError):
        return f"{type(exc).__name__}: {exc}"
    url, model = endpoint_of(exc, model)
    at = f"{url or 'the API'}{f' (model {model})' if model else ''}"
    if isinstance(exc, anthropic.AuthenticationError):
        return f"The API key was rejected (401) by {at}: check ANTHROPIC_API_KEY."
    if isinstance(exc, anthropic.NotFoundError):
        return sentences(
            f"Not found (404) at {at}: {api_message(exc)}",
            "Check the model name and ANTHROPIC_BASE_URL",
        )
    if isinstance(exc, anthropic.RateLimitError):
        return sentences(
            f"Rate limited (429) by {at} after retries: {api_message(exc)}",
            "Wait and try again",
        )
    if isinstance(exc, anthropic.APIStatusError):
        if exc.status_code == 529:
            return f"The API at {at} is overloaded (529) after retries: try again shortly."
        return sentences(f"API error {exc.status_code}: {api_message(exc)}", f"Sent to {at}")
    if isinstance(exc, anthropic.APITimeoutError):
        return f"The request to {at} timed out: try again, or raise the timeout."
    if isinstance(exc, anthropic.APIConnectionError):
        reason = connection_reason(exc)
        if never_connected(exc):
            return sentences(f"Could not connect to {at}: {reason}", "Check ANTHROPIC_BASE_URL")
        return sentences(
            f"The connection to {at} failed: {reason}",
            "The conversation is intact; try again",
        )
    return sentences(f"{type(exc).__name__} from {at}: {api_message(exc)}")
