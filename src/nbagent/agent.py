"""`Agent`: a session (conversation, settings, permissions, usage) and its public API."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .config import load_settings, missing_key_message, parse_max_turns, resolve_system_prompt
from .errors import AgentBusyError, ConfigError, NoPendingTurnError
from .events import ErrorEvent, Event, Notice, ToolCall, ToolOutput, TurnEnd, TurnStart, Usage
from .history import (
    append_user_content,
    tool_result_block,
    unanswered_tool_calls,
    with_cache_breakpoint,
)
from .loop import AWAITING_APPROVAL, AWAITING_TOOL_RESULTS, Run, drive
from .permissions import PermissionPolicy
from .pricing import cost_usd
from .providers.base import Provider
from .tools.base import Tool, as_tool_output
from .tools.runner import ToolRunner

ApproveCallable = Callable[[ToolCall], str]
Thinking = Literal["adaptive", "off"]

# Models that take `thinking: {"type": "adaptive"}`; others get no thinking
# parameter unless the caller passes one (local servers, older models).
_ADAPTIVE_PREFIXES = (
    "claude-fable-5",
    "claude-mythos-5",
    "claude-opus-4-8",
    "claude-opus-4-7",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
)


def supports_adaptive_thinking(model: str) -> bool:
    return model.startswith(_ADAPTIVE_PREFIXES)


@dataclass
class RunResult:
    """What one run (or resumed run) produced."""

    text: str
    stop_reason: str
    usage: Usage
    tool_calls: list[ToolCall]
    messages: list[dict[str, Any]]
    pending_approval: ToolCall | None = None
    pending_tool_calls: list[ToolCall] = field(default_factory=list)
    error: str | None = None

    @property
    def cost_usd(self) -> float:
        return self.usage.cost_usd


class Agent:
    """An agent session: the conversation persists across runs until `reset()`.

    Args:
        model: model name (default: ANTHROPIC_MODEL_NAME, else claude-opus-4-8).
        system: system prompt (default: SYSTEM_PROMPT_FILE, ./system_prompt.txt, or built-in).
        tools: None for the built-in tools, or a list of `@tool` functions.
        workspace: root directory of the file and shell tools.
        max_turns: rounds of tool use per run (default: MAX_TURNS, else 100).
        permission_mode: "auto", "ask" or "read-only".
        approve: callable(tool_call) -> "allow" | "deny" | "always", used in "ask" mode;
            without it an "ask" run stops with `pending_approval` set.
        thinking: "adaptive" (default, where the model supports it) or "off".
        effort: "low" | "medium" | "high" | "max", or None for the API default.
        max_tokens: output token limit per request.
        max_retries: SDK retries on 429, 5xx and connection errors.
        max_tool_output_chars: longer tool outputs are clipped with a notice.
        prompt_caching: mark cache breakpoints on the system prompt and the history.
        provider: a Provider; default: the Anthropic Messages API.
    """

    def __init__(
        self,
        model: str | None = None,
        system: str | list[dict[str, Any]] | None = None,
        tools: Iterable[Tool] | None = None,
        workspace: str | Path = ".",
        max_turns: int | None = None,
        permission_mode: str = "auto",
        approve: ApproveCallable | None = None,
        *,
        thinking: Thinking = "adaptive",
        effort: str | None = None,
        max_tokens: int = 32_000,
        max_retries: int = 2,
        timeout: float = 600.0,
        max_tool_output_chars: int = 30_000,
        prompt_caching: bool = True,
        shell_timeout: float = 30.0,
        provider: Provider | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        from .tools.workspace import Workspace

        cwd = Path.cwd()
        self.settings = load_settings(cwd, env)
        self.model = model or self.settings.model
        self.max_turns = (
            parse_max_turns(max_turns) if max_turns is not None else self.settings.max_turns
        )
        self.system = resolve_system_prompt(system, self.settings, cwd)
        self.policy = PermissionPolicy(permission_mode)
        self.approve = approve
        if thinking not in ("adaptive", "off"):
            raise ConfigError(f"thinking must be 'adaptive' or 'off', got {thinking!r}")
        self.thinking: Thinking = thinking
        self.effort = effort
        self.max_tokens = max_tokens
        self.prompt_caching = prompt_caching
        self.workspace = Workspace(workspace)
        self._notices: deque[Notice] = deque()
        if tools is None:
            from .tools.builtin import builtin_tools

            tools = builtin_tools(self.workspace, self._notices.append, shell_timeout=shell_timeout)
        self.tool_runner = ToolRunner(tools, max_output_chars=max_tool_output_chars)
        if provider is None:
            from .providers.anthropic_api import AnthropicProvider

            provider = AnthropicProvider(
                api_key=self.settings.api_key,
                auth_token=self.settings.auth_token,
                base_url=self.settings.base_url,
                max_retries=max_retries,
                timeout=timeout,
            )
            self._needs_key = True
        else:
            self._needs_key = False
        self.provider = provider
        self.messages: list[dict[str, Any]] = []
        self.usage = Usage()
        self._run: Run | None = None
        self._last_run = Run()
        self._lock = threading.Lock()
        # Set from another thread (a Stop button, the sidebar) to end the turn at
        # the next event boundary, as if the user had interrupted it.
        self.stop_requested = threading.Event()

    # -- conversation -------------------------------------------------------

    @property
    def tools(self) -> list[Tool]:
        return list(self.tool_runner.tools.values())

    def add_tools(self, tools: Iterable[Tool]) -> None:
        for t in tools:
            self.tool_runner.tools[t.name] = t

    def remove_tools(self, names: Iterable[str]) -> None:
        for name in names:
            self.tool_runner.tools.pop(name, None)

    @property
    def permission_mode(self) -> str:
        return self.policy.mode

    @permission_mode.setter
    def permission_mode(self, mode: str) -> None:
        always = self.policy.always_allowed
        self.policy = PermissionPolicy(mode)
        self.policy.always_allowed = always

    def stop(self) -> None:
        """Ask the running turn to stop at the next event (thread-safe)."""
        self.stop_requested.set()

    def reset(self) -> None:
        """Forget the conversation (usage totals and 'always' answers too)."""
        self.messages = []
        self.usage = Usage()
        self._run = None
        self.policy.always_allowed.clear()

    @property
    def pending_approval(self) -> ToolCall | None:
        run = self._run
        return run.pending_approval if run and run.stop_reason == AWAITING_APPROVAL else None

    # -- streaming API ------------------------------------------------------

    def stream(
        self, prompt: str | list[dict[str, Any]], *, execute_tools: bool = True
    ) -> Generator[Event, None, None]:
        """Start a turn with `prompt` and yield its events."""
        with self._busy():
            self._abandon_suspended_run()
            blocks = [{"type": "text", "text": prompt}] if isinstance(prompt, str) else list(prompt)
            append_user_content(self.messages, blocks)
            self._run = Run(execute_tools=execute_tools)
            yield TurnStart(prompt if isinstance(prompt, str) else "")
            yield from self._drive(self._run)

    def stream_resume(self, decision: str) -> Generator[Event, None, None]:
        """Answer the pending approval ("allow", "deny" or "always") and continue."""
        if decision not in ("allow", "deny", "always"):
            raise ValueError(f"decision must be 'allow', 'deny' or 'always', got {decision!r}")
        with self._busy():
            run = self._run
            if run is None or run.stop_reason != AWAITING_APPROVAL or run.pending_approval is None:
                raise NoPendingTurnError("no tool call is waiting for approval")
            run.decisions[run.pending_approval.id] = decision
            yield from self._drive(run)

    def stream_submit_tool_results(
        self, results: Mapping[str, Any] | Iterable[Mapping[str, Any]]
    ) -> Generator[Event, None, None]:
        """Give results for pending tool calls (manual execution) and continue.

        `results` maps tool_use ids to a string, content blocks or `ToolOutput`,
        or is a list of `tool_result` blocks.
        """
        with self._busy():
            run = self._run
            if run is None or run.stop_reason != AWAITING_TOOL_RESULTS:
                raise NoPendingTurnError("no tool calls are waiting for results")
            pending = {c.id for c in unanswered_tool_calls(self.messages)}
            for call_id, output in _normalize_results(results).items():
                if call_id not in pending:
                    raise ValueError(f"no pending tool call has id {call_id!r}")
                run.results[call_id] = output
            missing = pending - set(run.results)
            if missing:
                raise ValueError(f"results missing for tool calls: {', '.join(sorted(missing))}")
            yield from self._drive(run)

    def execute(self, call: ToolCall) -> ToolOutput:
        """Run one tool call with the agent's tools (for manual execution)."""
        return self.tool_runner.run_one(call)

    # -- blocking API -------------------------------------------------------

    def run(self, prompt: str | list[dict[str, Any]], *, execute_tools: bool = True) -> RunResult:
        """Run a turn to its end (or suspension) and return the result.

        API errors raise the SDK's typed exception after the history is made valid.
        """
        return self._collect(self.stream(prompt, execute_tools=execute_tools))

    def resume(self, decision: str) -> RunResult:
        return self._collect(self.stream_resume(decision))

    def submit_tool_results(
        self, results: Mapping[str, Any] | Iterable[Mapping[str, Any]]
    ) -> RunResult:
        return self._collect(self.stream_submit_tool_results(results))

    # -- async API ----------------------------------------------------------

    async def astream(
        self, prompt: str | list[dict[str, Any]], *, execute_tools: bool = True
    ) -> AsyncIterator[Event]:
        """Async version of `stream`: the loop runs in a worker thread."""
        async for event in _in_thread(lambda: self.stream(prompt, execute_tools=execute_tools)):
            yield event

    async def arun(
        self, prompt: str | list[dict[str, Any]], *, execute_tools: bool = True
    ) -> RunResult:
        return await asyncio.to_thread(self.run, prompt, execute_tools=execute_tools)

    async def aresume(self, decision: str) -> RunResult:
        return await asyncio.to_thread(self.resume, decision)

    # -- used by the loop ---------------------------------------------------

    def request_params(self, *, final: bool = False) -> dict[str, Any]:
        if self._needs_key and not (self.settings.api_key or self.settings.auth_token):
            raise ConfigError(missing_key_message())
        system: Any = self.system
        if self.prompt_caching:
            blocks: list[dict[str, Any]] = (
                [{"type": "text", "text": system}]
                if isinstance(system, str)
                else [dict(b) for b in system]
            )
            if blocks:
                blocks[-1]["cache_control"] = {"type": "ephemeral"}
            system = blocks
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": system,
            "messages": with_cache_breakpoint(self.messages)
            if self.prompt_caching
            else self.messages,
        }
        tools = self.tool_runner.params()
        if tools:
            params["tools"] = tools
            if final:
                # The tools stay declared (the history holds tool calls), but the
                # model must answer from what it has.
                params["tool_choice"] = {"type": "none"}
        if self.thinking == "adaptive" and supports_adaptive_thinking(self.model):
            params["thinking"] = {"type": "adaptive"}
        if self.effort:
            params["output_config"] = {"effort": self.effort}
        return params

    def record_usage(self, message: Any) -> Usage:
        u = message.usage
        model = getattr(message, "model", None) or self.model
        counts: dict[str, int] = {
            "input_tokens": u.input_tokens or 0,
            "output_tokens": u.output_tokens or 0,
            "cache_creation_input_tokens": getattr(u, "cache_creation_input_tokens", 0) or 0,
            "cache_read_input_tokens": getattr(u, "cache_read_input_tokens", 0) or 0,
        }
        usage = Usage(**counts, cost_usd=cost_usd(model, **counts), model=model)  # type: ignore[arg-type]
        self.usage = self.usage + usage
        return usage

    def drain_notices(self) -> Iterator[Notice]:
        while self._notices:
            yield self._notices.popleft()

    # -- internals ----------------------------------------------------------

    def _drive(self, run: Run) -> Generator[Event, None, None]:
        self._last_run = run
        yield from drive(self, run)
        if not run.suspended:
            self._run = None

    def _abandon_suspended_run(self) -> None:
        """A new prompt while a turn waits: answer its open calls so history stays valid."""
        run = self._run
        if run is None:
            return
        calls = unanswered_tool_calls(self.messages)
        if calls:
            blocks = []
            for call in calls:
                output = run.results.pop(call.id, None) or ToolOutput(
                    "not run: the user sent a new message instead of answering", is_error=True
                )
                blocks.append(tool_result_block(call.id, output))
            append_user_content(self.messages, blocks)
        self._run = None

    def _collect(self, events: Iterator[Event]) -> RunResult:
        error: BaseException | None = None
        end: TurnEnd | None = None
        for event in events:
            if isinstance(event, ErrorEvent):
                error = event.exception
            elif isinstance(event, TurnEnd):
                end = event
        run: Run = self._last_run
        if error is not None:
            raise error
        return RunResult(
            text=run.text,
            stop_reason=end.stop_reason if end else (run.stop_reason or "end_turn"),
            usage=run.usage,
            tool_calls=list(run.tool_calls),
            messages=self.messages,
            pending_approval=run.pending_approval,
            pending_tool_calls=unanswered_tool_calls(self.messages)
            if run.stop_reason == AWAITING_TOOL_RESULTS
            else [],
        )

    @contextlib.contextmanager
    def _busy(self) -> Iterator[None]:
        """One turn at a time per session (a cell and the panel share one agent)."""
        if not self._lock.acquire(blocking=False):
            raise AgentBusyError("a turn is already running in this session")
        try:
            yield
        finally:
            self._lock.release()


def _normalize_results(
    results: Mapping[str, Any] | Iterable[Mapping[str, Any]],
) -> dict[str, ToolOutput]:
    if isinstance(results, Mapping):
        return {k: as_tool_output(v) for k, v in results.items()}
    out = {}
    for block in results:
        out[block["tool_use_id"]] = ToolOutput(
            block.get("content", ""), bool(block.get("is_error"))
        )
    return out


async def _in_thread(make: Callable[[], Iterator[Event]]) -> AsyncIterator[Event]:
    """Drive a sync event iterator in a worker thread, handing events to the loop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def worker() -> None:
        try:
            iterator = make()
            for event in iterator:
                loop.call_soon_threadsafe(queue.put_nowait, ("event", event))
                if stop.is_set():
                    close = getattr(iterator, "close", None)
                    if close:
                        close()
                    break
        except BaseException as exc:  # delivered to the awaiting task
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, ("done", None))

    thread = threading.Thread(target=worker, name="nbagent-astream", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "event":
                yield value
            elif kind == "error":
                raise value
            else:
                break
    finally:
        stop.set()
