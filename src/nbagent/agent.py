"""`Agent`: the public facade of a `Session` (conversation, settings, permissions, usage)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .config import Settings
from .events import ErrorEvent, Event, ToolCall, ToolOutput, TurnEnd, Usage
from .history import unanswered_tool_calls
from .loop import AWAITING_TOOL_RESULTS
from .providers.base import Provider
from .session import ApproveCallable, ConfigSource, Session, Toolset, TurnStream, check_options
from .tools.base import Tool, as_tool_output
from .tools.runner import ToolRunner

__all__ = ["Agent", "ApproveCallable", "RunResult"]


Thinking = Literal["summarized", "adaptive", "omitted", "off"]


@dataclass
class RunResult:
    """What one run (or resumed run) produced. `messages` is a copy of the history."""

    text: str
    stop_reason: str
    usage: Usage
    tool_calls: list[ToolCall]
    messages: list[dict[str, Any]]
    pending_approval: ToolCall | None = None
    pending_tool_calls: list[ToolCall] = field(default_factory=list)
    error: str | None = None
    raw: Any = None  # the last raw response of the provider's SDK (e.g. anthropic Message)

    @property
    def cost_usd(self) -> float | None:
        return self.usage.cost_usd


class Agent:
    """An agent session: the conversation persists across runs until `reset()`.

    Every option of `nbagent.options.OPTIONS` is a keyword argument (None: resolve it
    from IPython config, the environment, `.env`, or the default, at each turn):

    Args:
        model: model name (default: ANTHROPIC_MODEL_NAME, else claude-opus-4-8).
        system: system prompt (default: SYSTEM_PROMPT_FILE, ./system_prompt.txt, or built-in).
        tools: None for the built-in tools, or a list of `@tool` functions.
        workspace: root directory of the file and shell tools.
        max_turns: rounds of tool use per run (default: MAX_TURNS, else 100).
        permission_mode: "auto", "ask" or "read-only".
        approve: callable(tool_call) -> "allow" | "deny" | "always", used in "ask" mode;
            without it an "ask" run stops with `pending_approval` set.
        thinking: "summarized" (default; "adaptive" is an alias), "omitted" or "off".
        effort: "low" | "medium" | "high" | "xhigh" | "max", or None for the API default.
        max_tokens, max_retries, timeout, max_tool_output_chars, prompt_caching,
        shell_timeout: see `nbagent.options`.
        provider: a Provider; default: the Anthropic Messages API.
        env: replaces the environment and `.env` as a settings source (tests, embedding).
    """

    def __init__(
        self,
        model: str | None = None,
        system: str | list[dict[str, Any]] | None = None,
        tools: Iterable[Tool] | None = None,
        workspace: str | Path | None = None,
        max_turns: int | None = None,
        permission_mode: str | None = None,
        approve: ApproveCallable | None = None,
        *,
        provider: Provider | None = None,
        env: Mapping[str, str] | None = None,
        toolset: Toolset | None = None,
        system_suffix: str | None = None,
        config_source: ConfigSource | None = None,
        **options: Any,
    ) -> None:
        tool_choice = options.pop("tool_choice", None)
        explicit = {
            "model": model,
            "workspace": str(workspace) if workspace is not None else None,
            "max_turns": max_turns,
            "permission_mode": permission_mode,
            **options,
        }
        self.session = Session(
            explicit=explicit,
            tools=tools,
            toolset=toolset,
            system=system,
            system_suffix=system_suffix,
            config_source=config_source,
            provider=provider,
            env=env,
            approve=approve,
        )
        self.session.tool_choice = tool_choice

    # -- what the session holds (read-only views) ---------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The live history (use `RunResult.messages` for a copy)."""
        return self.session.history

    @property
    def usage(self) -> Usage:
        return self.session.usage

    @property
    def settings(self) -> Settings:
        """The settings of the latest turn (or as resolved at construction)."""
        return self.session.settings

    def current_settings(self) -> Settings:
        """The settings the next turn would use, resolved now."""
        return self.session.resolve()

    @property
    def model(self) -> str:
        return self.session.resolve().model

    @model.setter
    def model(self, value: str) -> None:
        self.configure(model=value)

    @property
    def max_turns(self) -> int:
        return self.session.resolve().max_turns

    @max_turns.setter
    def max_turns(self, value: int) -> None:
        self.configure(max_turns=value)

    @property
    def permission_mode(self) -> str:
        return self.session.resolve().permission_mode

    @permission_mode.setter
    def permission_mode(self, value: str) -> None:
        self.configure(permission_mode=value)

    @property
    def system(self) -> str | list[dict[str, Any]]:
        return self.session.system

    @property
    def workspace(self) -> Any:
        return self.session.workspace

    @property
    def approve(self) -> ApproveCallable | None:
        return self.session.approve

    @approve.setter
    def approve(self, value: ApproveCallable | None) -> None:
        self.session.approve = value

    @property
    def tool_runner(self) -> ToolRunner:
        return self.session.tool_runner

    @property
    def tools(self) -> list[Tool]:
        return list(self.session.tool_runner.tools.values())

    @property
    def provider(self) -> Provider:
        return self.session.provider_for(self.session.resolve())

    @property
    def stop_requested(self) -> threading.Event:
        return self.session.stop_requested

    @property
    def busy(self) -> bool:
        return self.session.busy

    def configure(self, **options: Any) -> None:
        """Change options for the following turns (as if passed to `Agent(...)`)."""
        self.session.explicit.update(check_options(options))
        for name, value in options.items():
            if value is None:
                self.session.explicit.pop(name, None)

    def add_tools(self, tools: Iterable[Tool]) -> None:
        self.session.add_tools(tools)

    def remove_tools(self, names: Iterable[str]) -> None:
        self.session.remove_tools(names)

    def stop(self) -> None:
        """Ask the running turn to stop at the next event (thread-safe)."""
        self.session.stop()

    def close(self) -> None:
        """Stop the session's MCP servers and close its connections (also at exit)."""
        self.session.close()

    def reset(self) -> None:
        """Forget the conversation (usage totals and 'always' answers too).

        A turn running in another thread is stopped and waited for first."""
        self.session.reset()

    @property
    def pending_approval(self) -> ToolCall | None:
        return self.session.pending_approval

    # -- streaming API ------------------------------------------------------

    def stream(
        self,
        prompt: str | list[dict[str, Any]] | None = None,
        *,
        execute_tools: bool = True,
        approve: ApproveCallable | None = None,
        tool_choice: Any = None,
        **overrides: Any,
    ) -> TurnStream:
        """Start a turn with `prompt` and yield its events.

        Keyword options (model=, max_turns=, permission_mode=, ...) apply to this turn only;
        `tool_choice` is a Messages API dict or "auto", "any", "none" or a tool's name.
        Without a prompt, it continues a turn whose pending tool calls all got results
        through `execute(call)`.
        """
        if prompt is None:
            return self.session.stream_continue()
        return self.session.stream(
            prompt,
            execute_tools=execute_tools,
            approve=approve,
            overrides=overrides,
            tool_choice=tool_choice,
        )

    def stream_resume(self, decision: str, *, approve: ApproveCallable | None = None) -> TurnStream:
        """Answer the pending approval ("allow", "deny" or "always") and continue."""
        return self.session.stream_resume(decision, approve=approve)

    def stream_submit_tool_results(
        self, results: Mapping[str, Any] | Iterable[Mapping[str, Any]]
    ) -> TurnStream:
        """Give results for pending tool calls (manual execution) and continue.

        `results` maps tool_use ids to a string, content blocks or `ToolOutput`,
        or is a list of `tool_result` blocks.
        """
        return self.session.stream_submit_tool_results(_normalize_results(results))

    def execute(self, call: ToolCall) -> ToolOutput:
        """Run one tool call with the agent's tools (manual execution).

        A call the turn is waiting for has its result recorded in the conversation:
        once every pending call has one, `run()` with no prompt continues the turn.
        """
        output = self.session.tool_runner.run_one(call)
        self.session.record_result(call.id, output)
        return output

    # -- blocking API -------------------------------------------------------

    def run(
        self,
        prompt: str | list[dict[str, Any]] | None = None,
        *,
        execute_tools: bool = True,
        tool_choice: Any = None,
        **overrides: Any,
    ) -> RunResult:
        """Run a turn to its end (or suspension) and return the result.

        API errors raise the SDK's typed exception after the history is made valid.
        """
        return self._collect(
            self.stream(prompt, execute_tools=execute_tools, tool_choice=tool_choice, **overrides)
        )

    def resume(self, decision: str) -> RunResult:
        return self._collect(self.stream_resume(decision))

    def submit_tool_results(
        self, results: Mapping[str, Any] | Iterable[Mapping[str, Any]]
    ) -> RunResult:
        return self._collect(self.stream_submit_tool_results(results))

    # -- async API ----------------------------------------------------------

    async def astream(
        self, prompt: str | list[dict[str, Any]], *, execute_tools: bool = True, **overrides: Any
    ) -> AsyncIterator[Event]:
        """Async version of `stream`: each step runs in a worker thread, on demand.

        Breaking out of `async for` leaves nothing running: the next run from this
        event loop's thread closes the abandoned turn.
        """
        stream = self.session.stream(
            prompt,
            execute_tools=execute_tools,
            overrides=overrides,
            owner=threading.get_ident(),
        )
        async for event in _in_thread(stream):
            yield event

    async def arun(
        self, prompt: str | list[dict[str, Any]], *, execute_tools: bool = True, **overrides: Any
    ) -> RunResult:
        events: list[Event] = []
        stream = self.session.stream(
            prompt, execute_tools=execute_tools, overrides=overrides, owner=threading.get_ident()
        )
        async for event in _in_thread(stream):
            events.append(event)
        return self._collect(iter(events))

    async def aresume(self, decision: str) -> RunResult:
        events: list[Event] = []
        stream = self.session.stream_resume(decision, owner=threading.get_ident())
        async for event in _in_thread(stream):
            events.append(event)
        return self._collect(iter(events))

    # -- internals ----------------------------------------------------------

    def _collect(self, events: Iterator[Event]) -> RunResult:
        error: BaseException | None = None
        end: TurnEnd | None = None
        for event in events:
            if isinstance(event, ErrorEvent):
                error = event.exception
            elif isinstance(event, TurnEnd):
                end = event
        run = self.session.last_run
        if error is not None:
            raise error
        awaiting = run.stop_reason == AWAITING_TOOL_RESULTS
        return RunResult(
            text=run.text,
            stop_reason=end.stop_reason if end else (run.stop_reason or "end_turn"),
            usage=run.usage,
            tool_calls=list(run.tool_calls),
            messages=self.session.snapshot(),
            pending_approval=run.pending_approval,
            pending_tool_calls=unanswered_tool_calls(self.messages) if awaiting else [],
            raw=run.last_response.raw if run.last_response is not None else None,
        )


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


async def _in_thread(stream: TurnStream) -> AsyncIterator[Event]:
    """Step a turn in worker threads, one event per request, so a consumer that stops
    asking leaves the turn parked (and closable), not running on."""
    done = object()

    def step() -> Any:
        try:
            return next(stream)
        except StopIteration:
            return done

    try:
        while True:
            event = await asyncio.to_thread(step)
            if event is done:
                return
            yield event
    finally:
        if not stream.running:
            stream.close()
