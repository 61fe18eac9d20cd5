"""`Session`: the one owner of a conversation.

It holds the history, the settings sources, the permission memory, the usage totals
and the turn that is running. Each turn resolves its settings when it starts
(explicit arguments, IPython config, environment, `.env`, defaults), builds the
loop's collaborators from them as values (`loop.Turn`), and never changes a shared
object for the length of a turn. Every surface drives turns through here, so "a turn
is already running", reset-while-running and abandoned streams are handled once.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .budget import Budget
from .config import Settings, resolve, resolve_system_prompt
from .errors import AgentBusyError, NoPendingTurnError
from .events import Event, Notice, ToolCall, ToolOutput, TurnStart, Usage
from .history import append_user_content, tool_result_block, unanswered_tool_calls
from .loop import AWAITING_APPROVAL, AWAITING_TOOL_RESULTS, Run, Turn, drive
from .options import AGENT_OPTIONS, REBUILDS, option
from .permissions import PermissionPolicy
from .providers.base import ModelResponse, Provider
from .redact import redact, redact_obj, redact_output
from .tools.base import Tool
from .tools.runner import ToolRunner

if TYPE_CHECKING:
    from .mcp import McpManager
    from .undo import Recorder

ApproveCallable = Callable[[ToolCall], str]
# mcp (issue 12): asks the user whether an MCP server may start (its one-line summary).
MayStart = Callable[[str], bool]
# Builds a session's tools from its settings: (settings, workspace, emit notice) -> tools.
Toolset = Callable[[Settings, Any, Callable[[Notice], None]], list[Tool]]
ConfigSource = Callable[[], Mapping[str, Any]]

RESET_TIMEOUT = 30.0
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")


def check_options(
    values: Mapping[str, Any], allowed: Iterable[Any] = AGENT_OPTIONS
) -> dict[str, Any]:
    """Validate option values given as arguments; None means "not given"."""
    names = {o.name for o in allowed}
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in names:
            raise TypeError(f"unknown option {name!r}")
        if value is not None:
            out[name] = option(name).parse(value, "")
    return out


class TurnStream(Iterator[Event]):
    """The events of one turn. Iterate it; `close()` ends the turn with a valid history.

    A stream its consumer abandoned (left unfinished with a reference kept) is closed
    by the next turn started from the same thread, instead of blocking it.
    """

    def __init__(
        self, session: Session, body: Callable[[], Generator[Event, None, None]], owner: int
    ):
        self.owner = owner
        self.running = False
        self._gen = session._turn(self, body)

    def __iter__(self) -> TurnStream:
        return self

    def __next__(self) -> Event:
        self.running = True
        try:
            return next(self._gen)
        finally:
            self.running = False

    def close(self) -> None:
        self._gen.close()


class Session:
    def __init__(
        self,
        *,
        explicit: Mapping[str, Any] | None = None,
        tools: Iterable[Tool] | None = None,
        toolset: Toolset | None = None,
        system: str | list[dict[str, Any]] | None = None,
        system_suffix: str | None = None,
        config_source: ConfigSource | None = None,
        provider: Provider | None = None,
        env: Mapping[str, str] | None = None,
        approve: ApproveCallable | None = None,
    ) -> None:
        self.explicit = check_options(explicit or {})
        self.config_source = config_source
        self.env = env
        self.approve = approve
        self.tool_choice: Any = None  # the default for every turn (Agent(tool_choice=...))
        self._system_arg = system
        self._system_suffix = system_suffix
        self._fixed_tools = list(tools) if tools is not None else None
        self._toolset = toolset
        self._added: dict[str, Tool] = {}
        self._removed: set[str] = set()
        self._fixed_provider = provider
        self._provider: Provider | None = provider
        self._provider_key: tuple[Any, ...] | None = None
        self.history: list[dict[str, Any]] = []
        self.usage = Usage()
        self.always_allowed: set[str] = set()
        # Endpoints (base URLs; "" for the default) that refused server-side context
        # management: their requests go without it for the rest of the session.
        self.context_refused_by: set[str] = set()
        self.stop_requested = threading.Event()
        self.notices: deque[Notice] = deque()
        # Called while reset() waits for a running turn (the panel runs the main-thread
        # tool calls its worker waits for, which would otherwise deadlock).
        self.wait_hooks: list[Callable[[], None]] = []
        # nbagent.record: wraps each turn's provider (recording, replay); called in
        # _new_turn after provider_for. A wrapped provider with `needs_key = False`
        # (a replay) turns off the missing-key check.
        self.provider_wrapper: Callable[[Provider, Settings], Provider] | None = None
        # nbagent.record: called when a turn completes (not when it suspends), also
        # after an error, with the history valid (the conversation is saved here).
        self.turn_end_hooks: list[Callable[[Session, Run], None]] = []
        # mcp (issue 12): the session's MCP servers, made when the first turn begins
        # (nothing starts before it); their tools join the session's; `close()` stops them.
        self.mcp: McpManager | None = None
        self._mcp_tools: list[Tool] = []
        self._mcp_held: list[Notice] = []  # notices of an allow given before any turn
        # undo (issue 12): what each turn changes, for `%agent changes` / `%agent undo`.
        # The kernel's session sets it and gives the same recorder to its tools.
        self.recorder: Recorder | None = None
        self.tool_runner = ToolRunner([])
        self._built_key: tuple[Any, ...] | None = None
        self._system: str | list[dict[str, Any]] = ""
        self._state = threading.Lock()
        self._active: TurnStream | None = None
        self._run: Run | None = None  # a suspended run (approval, manual tool results)
        self._turn_ctx: Turn | None = None
        self.last_run = Run()
        from .redact import install_log_redaction

        install_log_redaction()  # tool-call log lines never show a known secret
        self.settings = self.resolve()  # fails early on a bad setting
        self._build(self.settings)

    # -- settings -------------------------------------------------------------

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> Settings:
        ipython = dict(self.config_source()) if self.config_source is not None else {}
        explicit = {**self.explicit, **check_options(overrides or {})}
        return resolve(explicit, ipython, cwd=Path.cwd(), env=self.env)

    @property
    def busy(self) -> bool:
        return self._active is not None

    @property
    def system(self) -> str | list[dict[str, Any]]:
        return self._system

    def _build(self, settings: Settings) -> bool:
        """(Re)build the workspace, tools and system prompt when what they depend on
        changed; True when something was rebuilt after the first build."""
        from .tools.workspace import Workspace

        key = (
            *(settings.get(name) for name in REBUILDS),
            settings.system_prompt_file,
            str(Path.cwd()),
        )
        if key == self._built_key:
            return False
        first = self._built_key is None
        self._built_key = key
        self.workspace = Workspace(settings.workspace)
        system = resolve_system_prompt(
            self._system_arg if self._system_arg is not None else settings.system_prompt,
            settings,
            Path.cwd(),
        )
        if isinstance(system, list):  # a list of strings is a list of text blocks
            system = [{"type": "text", "text": b} if isinstance(b, str) else b for b in system]
        if self._system_suffix:
            blocks = [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
            system = [*blocks, {"type": "text", "text": self._system_suffix}]
        self._system = system
        if self._fixed_tools is not None:
            base = self._fixed_tools
        elif self._toolset is not None:
            base = self._toolset(settings, self.workspace, self.notices.append)
        else:
            from .tools.builtin import tools_for

            base = tools_for(settings, self.workspace, self.notices.append)
        self._base_tools = base
        self._apply_tools(settings)
        return not first

    def _apply_tools(self, settings: Settings | None = None) -> None:
        tools: dict[str, Tool] = {}
        for t in self._base_tools:
            if t.name not in self._removed:
                tools[t.name] = t
        for t in self._mcp_tools:  # mcp (issue 12): named mcp__<server>__<tool>
            if t.name not in self._removed:
                tools.setdefault(t.name, t)
        tools.update(self._added)
        # Sorted by name: the same tools in the same order keep the prompt cache valid.
        self.tool_runner.tools = dict(sorted(tools.items()))
        if settings is not None:
            self.tool_runner.max_output_chars = settings.max_tool_output_chars

    def add_tools(self, tools: Iterable[Tool]) -> None:
        """Add tools; a name already in use or one the API rejects is an error."""
        new = list(tools)
        for t in new:
            if not isinstance(t, Tool):
                raise TypeError(
                    f"{t!r} is not a Tool: decorate it with @tool or use Tool.from_schema"
                )
        names = [t.name for t in new]
        for t in new:
            if not TOOL_NAME.fullmatch(t.name):
                raise ValueError(
                    f"invalid tool name {t.name!r}: use 1-128 letters, digits, '_' or '-'"
                )
            if t.name in self.tool_runner.tools or names.count(t.name) > 1:
                raise ValueError(
                    f"a tool named {t.name!r} already exists: remove_tools([{t.name!r}]) first"
                )
        for t in new:
            self._added[t.name] = t
            self._removed.discard(t.name)
        self._apply_tools()

    def remove_tools(self, names: Iterable[str]) -> None:
        for name in names:
            self._added.pop(name, None)
            self._removed.add(name)
        self._apply_tools()

    def provider_for(self, settings: Settings) -> Provider:
        """The provider `settings.model` names (`provider:model`; a bare name is Claude),
        rebuilt when its key, endpoint or tool protocol changes."""
        if self._fixed_provider is not None:
            return self._fixed_provider
        from .providers.registry import make_provider, parse_model_name, provider_key

        name, _ = parse_model_name(settings.model)
        key = provider_key(name, settings, env=self.env)
        if self._provider is None or key != self._provider_key:
            close = getattr(self._provider, "close", None)
            if close is not None:
                close()
            self._provider = make_provider(name, settings, env=self.env)
            self._provider_key = key
        return self._provider

    # -- turns ----------------------------------------------------------------

    def stream(
        self,
        prompt: str | list[dict[str, Any]],
        *,
        execute_tools: bool = True,
        approve: ApproveCallable | None = None,
        overrides: Mapping[str, Any] | None = None,
        owner: int | None = None,
        tool_choice: Any = None,
        may_start: MayStart | None = None,
    ) -> TurnStream:
        """A new turn with `prompt`; its settings are resolved when it starts.

        `may_start(summary) -> bool` asks the user whether an MCP server may start
        (a `.mcp.json` server, or any in `ask` mode); without it such a server is not
        started and a notice says how to allow it."""

        def body() -> Generator[Event, None, None]:
            self._abandon_suspended_run()
            turn, notices = self._new_turn(overrides, approve, tool_choice, may_start, mcp=True)
            if self.recorder is not None:  # undo (issue 12): this turn's record opens
                label = redact_obj(prompt if isinstance(prompt, str) else _prompt_text(prompt))
                self.recorder.begin_turn(label, snapshot_mb=turn.settings.undo_snapshot_mb)
            blocks = [{"type": "text", "text": prompt}] if isinstance(prompt, str) else list(prompt)
            # A prompt can carry a secret ({var} interpolation, a pasted value).
            append_user_content(self.history, redact_obj(blocks))
            run = self._run = Run(execute_tools=execute_tools)
            yield TurnStart(redact(prompt) if isinstance(prompt, str) else "")
            yield from notices
            yield from self._drive(turn, run)

        return TurnStream(self, body, owner or threading.get_ident())

    def stream_resume(
        self, decision: str, *, approve: ApproveCallable | None = None, owner: int | None = None
    ) -> TurnStream:
        """Answer the pending approval ("allow", "deny" or "always") and continue."""
        if decision not in ("allow", "deny", "always"):
            raise ValueError(f"decision must be 'allow', 'deny' or 'always', got {decision!r}")

        def body() -> Generator[Event, None, None]:
            run, turn = self._run, self._turn_ctx
            if (
                run is None
                or turn is None
                or run.stop_reason != AWAITING_APPROVAL
                or run.pending_approval is None
            ):
                raise NoPendingTurnError("no tool call is waiting for approval")
            run.decisions[run.pending_approval.id] = decision
            turn.approve = approve if approve is not None else self.approve
            yield from self._drive(turn, run)

        return TurnStream(self, body, owner or threading.get_ident())

    def stream_submit_tool_results(
        self, results: Mapping[str, ToolOutput], *, owner: int | None = None
    ) -> TurnStream:
        def body() -> Generator[Event, None, None]:
            run, turn = self._run, self._turn_ctx
            if run is None or turn is None or run.stop_reason != AWAITING_TOOL_RESULTS:
                raise NoPendingTurnError("no tool calls are waiting for results")
            pending = {c.id for c in unanswered_tool_calls(self.history)}
            for call_id, output in results.items():
                if call_id not in pending:
                    raise ValueError(f"no pending tool call has id {call_id!r}")
                run.results[call_id] = redact_output(output)
            missing = pending - set(run.results)
            if missing:
                raise ValueError(f"results missing for tool calls: {', '.join(sorted(missing))}")
            yield from self._drive(turn, run)

        return TurnStream(self, body, owner or threading.get_ident())

    @property
    def pending_approval(self) -> ToolCall | None:
        run = self._run
        return run.pending_approval if run and run.stop_reason == AWAITING_APPROVAL else None

    def record_result(self, call_id: str, output: ToolOutput) -> bool:
        """Keep the result of a pending call run by hand (`Agent.execute`); True if kept."""
        run = self._run
        if run is None or run.stop_reason != AWAITING_TOOL_RESULTS:
            return False
        if call_id not in {c.id for c in unanswered_tool_calls(self.history)}:
            return False
        run.results[call_id] = redact_output(output)
        return True

    def stream_continue(self, *, owner: int | None = None) -> TurnStream:
        """Continue a turn whose pending calls all have results (from `record_result`)."""
        return self.stream_submit_tool_results({}, owner=owner)

    @property
    def awaiting_tool_results(self) -> bool:
        run = self._run
        return run is not None and run.stop_reason == AWAITING_TOOL_RESULTS

    def compact(self) -> Any:
        """Compact the conversation now (`%agent compact`), as the session's turn.

        Returns the `CompactionOutcome` (what was replaced, its usage), or None when
        there is nothing older than the last exchange to compact."""
        from .context import compact_now

        outcome: list[Any] = []

        def body() -> Generator[Event, None, None]:
            self._abandon_suspended_run()
            turn, _ = self._new_turn(None, None)
            if turn.context is not None:
                outcome.append(compact_now(turn.context))
            yield from ()

        for _ in TurnStream(self, body, threading.get_ident()):
            pass
        return outcome[0] if outcome else None  # its usage was added to the session's

    def context_report(self) -> Any:
        """Tokens by kind, the window and the compaction trigger (`%agent context`)."""
        from .context import context_report, meter_of

        settings = self.resolve()
        compaction = settings.compaction
        if not self._takes_server_context(settings) and compaction != "off":
            compaction = "client"
        return context_report(
            history=self.history,
            system=self._system,
            tools=self.tool_runner.params(),
            model=settings.model,
            compaction=compaction,
            compact_at=settings.compact_at,
            meter=meter_of(self),
        )

    def stop(self) -> None:
        """Ask the running turn to stop at the next event (thread-safe)."""
        self.stop_requested.set()

    def reset(self, timeout: float = RESET_TIMEOUT) -> None:
        """Forget the conversation, usage totals and 'always' answers.

        A running turn is stopped first and waited for, so it ends with a valid
        history before the history is dropped (a reset never races a turn).
        """
        self.wait_idle(timeout, stop=True)
        self.history = []
        self.usage = Usage()
        self._run = None
        self._turn_ctx = None
        self.always_allowed.clear()

    def wait_idle(self, timeout: float, *, stop: bool) -> None:
        active = self._active
        if active is None:
            return
        if active.owner == threading.get_ident():
            if active.running:
                raise AgentBusyError("a turn cannot reset its own session while it runs")
            active.close()  # abandoned by this thread's consumer
            return
        deadline = time.monotonic() + timeout
        while self._active is not None:
            if stop:
                self.stop_requested.set()  # again: a turn clears it when it (re)starts
            for hook in list(self.wait_hooks):
                hook()
            if time.monotonic() > deadline:
                raise AgentBusyError(
                    f"the running turn did not stop within {timeout:.0f} s; try again"
                )
            time.sleep(0.02)

    # -- internals ------------------------------------------------------------

    def _turn(
        self, me: TurnStream, body: Callable[[], Generator[Event, None, None]]
    ) -> Generator[Event, None, None]:
        """Run `body` as the session's one turn (claimed at the first `next`)."""
        abandoned = None
        with self._state:
            active = self._active
            if active is not None:
                if active.owner == me.owner and not active.running:
                    abandoned = active
                else:
                    raise AgentBusyError("a turn is already running in this session")
            self._active = me
        if abandoned is not None:
            abandoned.close()  # its history is made valid before ours starts
            self._active = me
        try:
            yield from body()
        finally:
            with self._state:
                if self._active is me:
                    self._active = None

    def _new_turn(
        self,
        overrides: Mapping[str, Any] | None,
        approve: ApproveCallable | None,
        tool_choice: Any = None,
        may_start: MayStart | None = None,
        *,
        mcp: bool = False,
    ) -> tuple[Turn, list[Notice]]:
        from .redact import set_declared_secrets
        from .request import TurnRequests, normalize_tool_choice, plan_request

        settings = self.settings = self.resolve(overrides)
        set_declared_secrets(settings.secrets or ())
        notices: list[Notice] = []
        if self._build(settings) and self.history:
            notices.append(
                Notice(
                    "The workspace, tools or system prompt changed: they were rebuilt, "
                    "and the prompt cache starts over.",
                    "info",
                )
            )
        if mcp:  # mcp (issue 12): servers start (or are reused); their secrets are redacted
            self._update_mcp(settings, may_start, notices.append)
            set_declared_secrets([*(settings.secrets or ()), *self.mcp_secrets()])
        plan = plan_request(settings, server_context=self._takes_server_context(settings))
        notices += [Notice(text, "warning") for text in plan.notices]
        self.tool_runner.max_output_chars = settings.max_tool_output_chars
        provider = self.provider_for(settings)
        if self.provider_wrapper is not None:  # nbagent.record: recording and replay
            provider = self.provider_wrapper(provider, settings)
        # The Anthropic key is checked here; other providers say what is missing themselves.
        from .providers.registry import parse_model_name

        needs_key = (
            self._fixed_provider is None
            and getattr(provider, "needs_key", True)
            and parse_model_name(settings.model)[0] == "anthropic"
        )
        policy = PermissionPolicy(settings.permission_mode)
        policy.always_allowed = self.always_allowed
        tools = self.tool_runner
        choice = normalize_tool_choice(
            tool_choice if tool_choice is not None else self.tool_choice, set(tools.tools)
        )
        request = TurnRequests(
            settings,
            plan,
            system=self._system,
            history=self.history,
            tools=tools.params,
            tool_choice=choice,
            needs_key=needs_key,
        )

        budget = Budget(settings.turn_budget_usd, settings.session_budget_usd, settings.model)
        unpriced = budget.unpriced_notice()
        if unpriced:
            notices.append(Notice(unpriced, "warning"))

        def over_budget(params: dict[str, Any], run: Run) -> str | None:
            if getattr(turn.provider, "needs_key", True) is False:
                return None  # a replayed response costs nothing
            return budget.refusal(params, run.usage.cost_usd, self.usage.cost_usd)

        turn = Turn(
            provider=provider,
            over_budget=over_budget if budget.active else None,
            budget_summary=(
                (lambda run: budget.summary(run.usage.cost_usd, self.usage.cost_usd))
                if budget.active
                else None
            ),
            tools=tools,
            policy=policy,
            history=self.history,
            settings=settings,
            build_request=request,
            record_usage=self._record_usage,
            approve=approve if approve is not None else self.approve,
            stop_requested=self.stop_requested,
            notices=self.notices,
        )
        if plan.context is not None:  # context (issue 10): measure; compact when needed
            from .context import SessionContext, meter_of

            endpoint = settings.base_url or ""

            def refused() -> tuple[Any, str]:
                self.context_refused_by.add(endpoint)
                policy = request.without_server_context()
                return policy, (f"The endpoint {endpoint}" if endpoint else "The API")

            turn.context = SessionContext(
                self.history,
                plan.context,
                meter_of(self),
                request,
                provider,
                self._record_usage,
                on_refused=refused,
                # `%agent compact` (no turn running): the session's budget; a turn's
                # loop checks its own spending as well.
                check_budget=(
                    (lambda params: budget.refusal(params, None, self.usage.cost_usd))
                    if budget.active
                    else None
                ),
            )
        self._turn_ctx = turn
        return turn, notices

    def _takes_server_context(self, settings: Settings) -> bool:
        """False once the settings' endpoint refused server-side context management."""
        return (settings.base_url or "") not in self.context_refused_by

    def _record_usage(self, response: ModelResponse) -> Usage:
        from .models import cost_usd

        model = response.model or self.settings.model
        counts: dict[str, int] = {
            "input_tokens": response.input_tokens,
            "output_tokens": response.output_tokens,
            "cache_creation_input_tokens": response.cache_creation_input_tokens,
            "cache_read_input_tokens": response.cache_read_input_tokens,
        }
        usage = Usage(**counts, cost_usd=cost_usd(model, **counts), model=model)  # type: ignore[arg-type]
        self.usage = self.usage + usage
        return usage

    def _drive(self, turn: Turn, run: Run) -> Generator[Event, None, None]:
        self.last_run = run
        try:
            yield from drive(turn, run)
        finally:
            if not run.suspended:  # nbagent.record: the turn is over, its history valid
                self._turn_ended(run)
        if not run.suspended:
            self._run = None

    def _turn_ended(self, run: Run) -> None:
        for hook in list(self.turn_end_hooks):
            try:
                hook(self, run)
            except Exception:  # saving a record must never fail the turn
                import logging

                logging.getLogger("nbagent.session").exception("a turn-end hook failed")

    def _abandon_suspended_run(self) -> None:
        """A new prompt while a turn waits: answer its open calls so history stays valid."""
        run = self._run
        if run is None:
            return
        calls = unanswered_tool_calls(self.history)
        if calls:
            blocks = []
            for call in calls:
                output = run.results.pop(call.id, None) or ToolOutput(
                    "not run: the user sent a new message instead of answering", is_error=True
                )
                blocks.append(tool_result_block(call.id, output))
            append_user_content(self.history, blocks)
        self._run = None

    def snapshot(self) -> list[dict[str, Any]]:
        """A copy of the history that later turns do not change."""
        return copy.deepcopy(self.history)

    def add_note(self, text: str) -> None:
        """Tell the model something between turns (e.g. what `%agent undo` reverted):
        user text appended to the history, which stays valid (a turn waiting for an
        approval or for tool results is abandoned first, its calls answered)."""
        if not text:
            return
        if self.busy:
            raise AgentBusyError("a turn is running; stop it first")
        self._abandon_suspended_run()
        append_user_content(self.history, [{"type": "text", "text": text}])

    def close(self) -> None:
        """Release what the session holds outside Python: its MCP servers stop."""
        mcp, self.mcp = self.mcp, None  # mcp (issue 12)
        self._mcp_tools = []
        self._apply_tools()
        if mcp is not None:
            mcp.close()

    # -- mcp (issue 12) ---------------------------------------------------------

    def _mcp_manager(self) -> McpManager:
        if self.mcp is None:
            from .mcp import McpManager

            self.mcp = McpManager()  # the working directory's .mcp.json, read each turn
        return self.mcp

    def _update_mcp(
        self, settings: Settings, may_start: MayStart | None, emit: Callable[[Notice], None]
    ) -> None:
        """At a turn's start: start the servers that may start (the first turn waits up
        to mcp_startup_timeout), and give the turn their tools, sorted."""
        if self.mcp is None and not settings.mcp_servers and not _has_project_mcp_file():
            return  # no server configured: nothing of nbagent.mcp is even imported
        for notice in self._mcp_held:
            emit(notice)
        self._mcp_held = []
        tools = self._mcp_manager().tools_for_turn(settings, may_start=may_start, emit=emit)
        if [id(t) for t in tools] != [id(t) for t in self._mcp_tools]:
            self._mcp_tools = list(tools)
            self._apply_tools(settings)

    def mcp_secrets(self) -> list[str]:
        """Secret values from the MCP servers' env and headers (redacted everywhere)."""
        return self.mcp.secret_values() if self.mcp is not None else []

    def mcp_status(self) -> list[dict[str, Any]]:
        """Each configured MCP server, its state and its tools (for the sidebar)."""
        if self.mcp is None or not self.mcp.status():
            return [
                {
                    "name": c.name,
                    "source": c.source,
                    "transport": c.transport,
                    "state": "not started",
                    "detail": "servers start when the first turn begins",
                    "tools": [],
                }
                for c in self._mcp_configured()
            ]
        return [s.to_dict() for s in self.mcp.status()]

    def mcp_status_text(self) -> str:
        """`%agent mcp`: servers, their state and their tools."""
        if self.mcp is not None and self.mcp.status():
            return self.mcp.status_text()
        configured = self._mcp_configured()
        if not configured:
            return self._mcp_manager().status_text()  # how to configure one
        lines = [
            f"{c.name} ({c.transport}, from {c.source}): not started - servers start when "
            "the first turn begins"
            for c in configured
        ]
        return "\n".join(lines)

    def mcp_allow(self, name: str) -> bool:
        """Allow MCP server `name` (its configuration as it is now) to start from the
        next turn; False if no server has that name."""
        manager = self._mcp_manager()
        if manager.allow(name):
            return True
        if name not in {c.name for c in self._mcp_configured()}:
            return False
        # No turn has read the configuration yet: read it without starting anything
        # (read-only starts none), then allow. Its notices wait for the next turn.
        probe = dataclasses.replace(self.resolve(), permission_mode="read-only")
        held: list[Notice] = []
        manager.tools_for_turn(probe, may_start=None, emit=held.append)
        self._mcp_held += [n for n in held if "the session is read-only" not in n.text]
        return manager.allow(name)

    def mcp_restart(self, name: str) -> bool:
        """Stop server `name`; the next turn starts it again. False if it is not known."""
        if name not in {c.name for c in self._mcp_configured()}:
            return False
        if self.mcp is not None:
            self.mcp.restart(name)
        return True

    def _mcp_configured(self) -> list[Any]:
        from .mcp import load_servers

        return list(load_servers(self.resolve().mcp_servers, Path.cwd()).servers)


def _has_project_mcp_file() -> bool:
    return (Path.cwd() / ".mcp.json").is_file()  # nbagent.mcp.config.PROJECT_FILE


def _prompt_text(blocks: list[dict[str, Any]]) -> str:
    return " ".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
