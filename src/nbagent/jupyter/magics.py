"""`%%agent` and `%agent`: the notebook's way to talk to the agent."""

from __future__ import annotations

import argparse
import json
import shlex
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand

from ..errors import NBAgentError
from ..options import TURN_OPTIONS
from . import warmup
from .settings import NBAgent

if TYPE_CHECKING:
    from ..events import Event, ToolCall
    from ..pump import PumpResult


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, not argparse's usage dump
        raise ValueError(message)


def cell_parser() -> argparse.ArgumentParser:
    """`%%agent` flags: --new, --quiet, and every per-turn option of `nbagent.options`."""
    parser = _Parser(prog="%%agent", add_help=False)
    parser.add_argument("--new", action="store_true", help="start a fresh conversation")
    parser.add_argument("--quiet", action="store_true", help="hide thinking")
    for opt in TURN_OPTIONS:
        parser.add_argument(
            opt.cli_flag,
            dest=opt.name,
            type=str,
            choices=list(opt.choices) if opt.choices else None,
            default=None,
            help=opt.help,
        )
    return parser


HELP = """\
%%agent [--new] [--quiet] [--model NAME] [--max-turns N] [--mode auto|ask|read-only]
        [--thinking summarized|omitted|off] [--effort LEVEL] [--max-tokens N]
    The cell body is the prompt; one conversation continues across cells.
    {name} inserts a variable's repr, {In[3]} / {Out[3]} a past input / output,
    {Err} the last traceback; {{ and }} are literal braces.

%agent <prompt>          one-line prompt
%agent reset             start a new conversation
%agent history           the conversation so far
%agent resume            continue the last saved conversation (.nbagent/)
%agent context           tokens by kind, the window, when compaction triggers
%agent compact           compact the conversation now
%agent usage             tokens and cost so far
%agent model [NAME]      show or set the model (provider:model); list the providers
%agent tools             the tools the agent can use
%agent mcp               MCP servers: their state and their tools
%agent mcp allow NAME    let MCP server NAME start (a .mcp.json server, or in ask mode)
%agent mcp restart NAME  stop MCP server NAME; the next turn starts it again
%agent changes           what the last turn changed (cells, files, variables) as a diff
%agent undo              revert the last turn's changes; again to go further back
%agent config            the effective configuration
%agent panel             open the chat panel
%agent help              this help

Configure with %config NBAgent.<option> = value (see %config NBAgent)."""


@magics_class
class AgentMagics(Magics):
    def __init__(self, shell: Any, config: NBAgent) -> None:
        super().__init__(shell)
        self.options = config

    @property
    def session(self) -> Any:
        from .session import get_session

        assert self.shell is not None
        return get_session(self.shell, self.options)

    # -- %%agent ------------------------------------------------------------

    @cell_magic
    def agent(self, line: str, cell: str) -> None:
        """Send the cell to the agent. See %agent help."""
        try:
            args = cell_parser().parse_args(shlex.split(line))
        except (SystemExit, ValueError) as exc:  # argparse exits; shlex raises on quotes
            if not isinstance(exc, SystemExit) or exc.code:
                self._fail(f"%%agent: {exc if isinstance(exc, ValueError) else 'bad options'}")
            return
        overrides = {o.name: getattr(args, o.name) for o in TURN_OPTIONS}
        overrides = {k: v for k, v in overrides.items() if v is not None}
        try:
            from ..session import check_options

            check_options(overrides)
        except (NBAgentError, TypeError) as exc:
            self._fail(f"%%agent: {exc}")
            return
        if not cell.strip():
            print("%%agent: the cell is empty; write your request below the %%agent line.")
            return
        if args.new:
            try:
                self.session.reset()
            except NBAgentError as exc:
                self._fail(f"%%agent: {exc}")
                return
        self._run_turn(cell, overrides=overrides, quiet=args.quiet)

    def _fail(self, message: str, policy: str | None = None, out: Any = None) -> None:
        """Say what went wrong (in place of the cell's status line, when there is one);
        then, per `raise_on_error` (headless runs by default), raise so nbconvert,
        papermill and CI fail instead of passing silently."""
        if out is not None:
            out.abort(message)
        else:
            print(message)
        from .headless import should_raise

        assert self.shell is not None
        if should_raise(policy or self._raise_policy(), self.shell):
            from ..errors import AgentCellError

            raise AgentCellError(message.removeprefix("%%agent: "))

    def _raise_policy(self) -> str:
        try:
            return str(self.session.settings.raise_on_error)
        except Exception:  # the settings themselves are broken: the trait, else the default
            return str(getattr(self.options, "raise_on_error", None) or "auto")

    # -- %agent -------------------------------------------------------------

    @line_magic("agent")  # type: ignore[arg-type]
    @no_var_expand  # {name} is nbagent's interpolation, not IPython's expansion
    def agent_line(self, line: str) -> Any:
        """One-line prompt or a command: reset, history, usage, model, tools, mcp, changes,
        undo, config, panel, help."""
        words = line.strip().split(maxsplit=1)
        if not words:
            print(HELP)
            return None
        command, rest = words[0], (words[1] if len(words) > 1 else "")
        handler = {
            "help": self._help,
            "reset": self._reset,
            "history": self._history,
            "usage": self._usage,
            "tools": self._tools,
            "config": self._config,
            "panel": self._panel,
            "resume": self._resume,
            "context": self._context,
            "compact": self._compact,
            "changes": self._changes,  # undo (issue 12)
            "undo": self._undo,
            "mcp": self._mcp,  # mcp (issue 12)
        }.get(command)
        if handler is not None and not rest:
            return handler()
        if command == "mcp" and self._mcp_command(rest.split()):  # mcp (issue 12)
            return None
        if command == "model" and len(rest.split()) <= 1:
            return self._model(rest.strip())
        self._run_turn(line.strip(), overrides={}, quiet=False)
        return None

    def _help(self) -> None:
        print(HELP)

    # -- mcp and undo (issue 12) ---------------------------------------------

    def _mcp(self) -> None:
        print(self.session.agent.session.mcp_status_text())

    def _mcp_command(self, words: list[str]) -> bool:
        """`%agent mcp allow NAME` / `%agent mcp restart NAME`; False: not one of them."""
        if len(words) != 2 or words[0] not in ("allow", "restart"):
            return False
        verb, name = words
        session = self.session.agent.session
        try:
            known = session.mcp_allow(name) if verb == "allow" else session.mcp_restart(name)
        except NBAgentError as exc:
            print(f"%agent mcp {verb}: {exc}")
            return True
        if not known:
            print(f"%agent mcp {verb}: no MCP server is named {name!r} (see %agent mcp).")
            return True
        from .sidebar import refresh_mcp_status

        refresh_mcp_status(self.shell)
        if verb == "allow":
            print(f"Allowed MCP server {name!r}: it starts when the next turn begins.")
        else:
            print(f"Stopped MCP server {name!r}: the next turn starts it again.")
        return True

    def _changes(self) -> None:
        print(self.session.changes_text())

    def _undo(self) -> None:
        try:
            report = self.session.undo()
        except NBAgentError as exc:
            print(f"%agent undo: {exc}")
            return
        print(report.text())
        kernel = getattr(self.shell, "kernel", None)
        if kernel is not None:  # the sidebar's list of changes follows
            from ..transport.bridge import get_bridge
            from .sidebar import send_changes

            bridge = get_bridge(kernel)
            if bridge is not None:
                send_changes(self.shell, bridge)

    def _reset(self) -> None:
        try:
            self.session.reset()
        except NBAgentError as exc:
            print(f"%agent reset: {exc}")
            return
        print("Started a new conversation.")

    def _context(self) -> None:
        print(self.session.agent.session.context_report())

    def _compact(self) -> None:
        try:
            outcome = self.session.agent.session.compact()
        except NBAgentError as exc:
            print(f"%agent compact: {exc}")
            return
        print(outcome.text() if outcome is not None else "Nothing to compact yet.")

    def _resume(self) -> None:
        from .conversation import conversation_for

        for notice in conversation_for(self.session).resume():
            print(notice.text)

    def _history(self) -> None:
        from ..render.history import history_text
        from .conversation import conversation_for

        for notice in conversation_for(self.session).ensure_restored():
            print(notice.text)
        messages = self.session.agent.messages
        print(history_text(messages) if messages else "No conversation yet.")

    def _usage(self) -> None:
        from ..render.format import format_usage

        print(f"Session: {format_usage(self.session.agent.usage)}")

    def _model(self, name: str) -> None:
        if name:
            try:
                from ..session import check_options

                check_options({"model": name})
            except NBAgentError as exc:
                print(f"%agent model: {exc}")
                return
            # The same place %config writes: the next turn reads it.
            self.options.model = name
        settings = self.session.settings
        print(f"Model: {settings.model}")
        if not name:  # what else could be used: keys set, local servers answering
            from ..providers.registry import configured_providers

            print("Providers (use provider:model):")
            for status in configured_providers(settings):
                print("  " + status.line())

    def _tools(self) -> None:
        for t in self.session.agent.tools:
            first = (t.description or "").strip().splitlines()[0] if t.description else ""
            print(f"{t.name:<24} {t.category:<12} {first}")

    def _config(self) -> None:
        from ..models import describe_request_options, model_info

        try:
            s = self.session.settings
        except NBAgentError as exc:
            print(f"%agent config: {exc}")
            return
        sent = describe_request_options(model_info(s.model), s.thinking, s.effort)
        rows: dict[str, Any] = {
            "model": s.model,
            "base_url": s.base_url or "(Anthropic default)",
            "api_key": "set" if (s.api_key or s.auth_token) else "NOT SET",
            "max_turns": s.max_turns,
            "permission_mode": s.permission_mode,
            "headless_approval": s.headless_approval,
            "workspace": str(self.session.agent.workspace.root),
            **{f"{k} (sent)": v for k, v in sent.items()},
            "max_tokens": s.max_tokens,
            ".env": str(s.env_file) if s.env_file else "(none)",
        }
        for key, value in rows.items():
            source = s.sources.get(key)
            where = f"  [{source}]" if source and source != "default" else ""
            print(f"{key:<18} {value}{where}")

    def _panel(self) -> Any:
        from .panel import chat

        return chat(self.shell)

    # -- a turn -------------------------------------------------------------

    def _run_turn(self, prompt: str, *, overrides: dict[str, Any], quiet: bool) -> None:
        from ..pump import pump
        from ..render.transcript import Transcript
        from ..transport.broadcast import broadcaster
        from .cell_output import CellOutput
        from .interpolate import interpolate

        assert self.shell is not None
        # The status line shows before anything else happens (imports, settings, waits).
        broadcast = broadcaster(self.shell, source="cell")
        out = CellOutput(Transcript(), rich_mime=broadcast.rich_frontend)
        warmup.finish_for_turn(self.shell)  # what the warm-up has not done yet, in one go
        history = self.shell.history_manager
        try:
            session = self.session
            settings = session.agent.current_settings()
            text = interpolate(
                prompt,
                self.shell.user_ns,
                max_chars=settings.max_repr_chars,
                raw_inputs=history.input_hist_raw if history is not None else None,
            )
        except NBAgentError as exc:
            self._fail(f"%%agent: {exc}", out=out)
            return
        out.transcript.show_thinking = settings.show_thinking and not quiet
        out.interval = settings.update_interval
        session.on_display = out.show_bundles

        def handle(event: Event) -> None:
            out.handle(event)
            broadcast(event)

        try:
            from .conversation import conversation_for

            conversation_for(session).begin_cell(prompt)  # restore; replay key: raw source
            events = session.stream_turn(
                text,
                overrides=overrides,
                approve=self._approver(handle, settings),
                may_start=self._mcp_asker(handle, settings),
            )
            result = pump(events, handle)
        finally:
            session.on_display = None
        self._raise_if_failed(result, settings.raise_on_error)

    def _raise_if_failed(self, result: PumpResult, policy: str) -> None:
        """After the output is shown: a failed turn raises where `raise_on_error` says."""
        from .headless import should_raise, turn_failure

        reason = turn_failure(result)
        assert self.shell is not None
        if reason is not None and should_raise(policy, self.shell):
            from ..errors import AgentCellError

            raise AgentCellError(reason)

    def _approver(self, handle: Any, settings: Any) -> Any:
        from IPython.core.error import StdinNotImplementedError

        from .session import headless_notice

        def approve(call: ToolCall) -> str:
            args = ", ".join(f"{k}={json.dumps(v)[:80]}" for k, v in call.input.items())
            try:
                answer = input(f"Allow {call.name}({args})? [y]es / [n]o / [a]lways: ")
            except StdinNotImplementedError:
                decision = settings.headless_approval
                handle(headless_notice(call.name, decision))
                return decision
            answer = answer.strip().lower()
            if answer in ("a", "always"):
                return "always"
            return "allow" if answer in ("y", "yes") else "deny"

        return approve

    def _mcp_asker(self, handle: Any, settings: Any) -> Any:
        """Asks on stdin whether an MCP server may start, once per configuration
        (headless: `headless_approval` decides, and a notice says so)."""
        from IPython.core.error import StdinNotImplementedError

        from ..events import Notice

        def may_start(summary: str) -> bool:
            try:
                answer = input(f"{summary}\nStart it? [y]es / [n]o: ")
            except StdinNotImplementedError:
                allow = settings.headless_approval == "allow"
                verb = "Allowed" if allow else "Did not allow"
                handle(
                    Notice(
                        f"{verb} {summary.split(':', 1)[0]} to start: no stdin here (headless "
                        "run), so "
                        f"NBAgent.headless_approval='{settings.headless_approval}' decided.",
                        "warning",
                    )
                )
                return allow
            return answer.strip().lower() in ("y", "yes")

        return may_start
