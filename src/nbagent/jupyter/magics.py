"""`%%agent` and `%agent`: the notebook's way to talk to the agent."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from IPython.core import magic_arguments
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from ..errors import NBAgentError
from ..events import Event, ToolCall, TurnEnd
from .settings import NBAgent

HELP = """\
%%agent [--new] [--model NAME] [--max-turns N] [--mode auto|ask|read-only] [--quiet]
    The cell body is the prompt; one conversation continues across cells.
    {name} inserts a variable's repr, {In[3]} / {Out[3]} a past input / output,
    {Err} the last traceback; {{ and }} are literal braces.

%agent <prompt>          one-line prompt
%agent reset             start a new conversation
%agent history           the conversation so far
%agent usage             tokens and cost so far
%agent model [NAME]      show or set the model
%agent tools             the tools the agent can use
%agent config            the effective configuration
%agent panel             open the chat panel
%agent help              this help

Configure with %config NBAgent.<option> = value (see %config NBAgent)."""


@magics_class
class AgentMagics(Magics):
    def __init__(self, shell: Any, settings: NBAgent) -> None:
        super().__init__(shell)
        self.settings = settings

    @property
    def session(self) -> Any:
        from .session import get_session

        assert self.shell is not None
        return get_session(self.shell, self.settings)

    # -- %%agent ------------------------------------------------------------

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("--new", action="store_true", help="start a fresh conversation")
    @magic_arguments.argument("--model", help="model for this cell")
    @magic_arguments.argument("--max-turns", type=int, help="rounds of tool use for this cell")
    @magic_arguments.argument(
        "--mode", choices=["auto", "ask", "read-only"], help="permission mode for this cell"
    )
    @magic_arguments.argument("--quiet", action="store_true", help="hide thinking")
    @cell_magic
    def agent(self, line: str, cell: str) -> None:
        """Send the cell to the agent. See %agent help."""
        try:
            args = magic_arguments.parse_argstring(self.agent, line)  # type: ignore[arg-type]
        except Exception as exc:  # argparse's UsageError; show one line, not a traceback
            print(f"%%agent: {exc}")
            return
        if args.new:
            self.session.reset()
        overrides: dict[str, Any] = {}
        if args.model:
            overrides["model"] = args.model
        if args.max_turns is not None:
            if args.max_turns < 1:
                print("%%agent: --max-turns must be at least 1")
                return
            overrides["max_turns"] = args.max_turns
        if args.mode:
            overrides["permission_mode"] = args.mode
        if not cell.strip():
            print("%%agent: the cell is empty; write your request below the %%agent line.")
            return
        self._run_turn(cell, overrides=overrides, quiet=args.quiet)

    # -- %agent -------------------------------------------------------------

    @line_magic("agent")  # type: ignore[arg-type]
    def agent_line(self, line: str) -> Any:
        """One-line prompt or a command: reset, history, usage, model, tools, config, panel, help."""
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
        }.get(command)
        if handler is not None and not rest:
            return handler()
        if command == "model" and len(rest.split()) <= 1:
            return self._model(rest.strip())
        self._run_turn(line.strip(), overrides={}, quiet=False)
        return None

    def _help(self) -> None:
        print(HELP)

    def _reset(self) -> None:
        self.session.reset()
        print("Started a new conversation.")

    def _history(self) -> None:
        from ..history import text_of

        messages = self.session.agent.messages
        if not messages:
            print("No conversation yet.")
            return
        for message in messages:
            content = message["content"]
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            for block in blocks:
                kind = block.get("type")
                if kind == "text":
                    print(f"{message['role']}: {text_of({'content': [block]})}")
                elif kind == "tool_use":
                    print(
                        f"{message['role']}: [tool call] {block['name']} {json.dumps(block['input'])[:200]}"
                    )
                elif kind == "tool_result":
                    state = "error" if block.get("is_error") else "ok"
                    print(f"{message['role']}: [tool result, {state}]")

    def _usage(self) -> None:
        u = self.session.agent.usage
        print(
            f"Input tokens: {u.input_tokens:,} (+{u.cache_read_input_tokens:,} cache reads, "
            f"{u.cache_creation_input_tokens:,} cache writes)\n"
            f"Output tokens: {u.output_tokens:,}\nCost: ${u.cost_usd:.4f}"
        )

    def _model(self, name: str) -> None:
        agent = self.session.agent
        if name:
            agent.model = name
            self.settings.model = name
        print(f"Model: {agent.model}")

    def _tools(self) -> None:
        for t in self.session.agent.tools:
            first = (t.description or "").strip().splitlines()[0] if t.description else ""
            print(f"{t.name:<24} {t.category:<12} {first}")

    def _config(self) -> None:
        agent = self.session.agent
        s = agent.settings
        rows = {
            "model": agent.model,
            "base_url": s.base_url or "(Anthropic default)",
            "api_key": "set" if (s.api_key or s.auth_token) else "NOT SET",
            "max_turns": agent.max_turns,
            "permission_mode": agent.permission_mode,
            "headless_approval": self.settings.headless_approval,
            "workspace": str(agent.workspace.root),
            "thinking": agent.thinking,
            "effort": agent.effort or "(default)",
            "max_tokens": agent.max_tokens,
            ".env": str(s.env_file) if s.env_file else "(none)",
        }
        for key, value in rows.items():
            print(f"{key:<18} {value}")

    def _panel(self) -> Any:
        from .panel import chat

        return chat(self.shell)

    # -- a turn -------------------------------------------------------------

    def _run_turn(self, prompt: str, *, overrides: dict[str, Any], quiet: bool) -> None:
        from ..render.transcript import Transcript
        from ..transport.broadcast import broadcaster
        from .cell_output import CellOutput
        from .interpolate import interpolate

        assert self.shell is not None
        history = self.shell.history_manager
        try:
            text = interpolate(
                prompt,
                self.shell.user_ns,
                max_chars=self.settings.max_repr_chars,
                raw_inputs=history.input_hist_raw if history is not None else None,
            )
            session = self.session
            agent = session.agent
        except NBAgentError as exc:
            print(f"%%agent: {exc}")
            return
        broadcast = broadcaster(self.shell, source="cell")
        transcript = Transcript(show_thinking=self.settings.show_thinking and not quiet)
        out = CellOutput(
            transcript, interval=self.settings.update_interval, rich_mime=broadcast.rich_frontend
        )
        session.on_display = out.show_bundles

        def handle(event: Event) -> None:
            out.handle(event)
            broadcast(event)

        approve = (
            self._approver(handle)
            if (overrides.get("permission_mode") or agent.permission_mode) == "ask"
            else None
        )
        events = session.stream_turn(text, overrides=overrides, approve=approve)
        try:
            with contextlib.closing(events):
                for event in events:
                    handle(event)
        except KeyboardInterrupt:
            handle(TurnEnd("interrupted", "Interrupted by the user."))
        except NBAgentError as exc:  # e.g. the panel is running a turn: one line, no traceback
            print(f"%%agent: {exc}")
        finally:
            session.on_display = None

    def _approver(self, handle: Any) -> Any:
        from IPython.core.error import StdinNotImplementedError

        from .session import headless_notice

        def approve(call: ToolCall) -> str:
            args = ", ".join(f"{k}={json.dumps(v)[:80]}" for k, v in call.input.items())
            try:
                answer = input(f"Allow {call.name}({args})? [y]es / [n]o / [a]lways: ")
            except StdinNotImplementedError:
                decision = self.settings.headless_approval
                handle(headless_notice(call.name, decision))
                return decision
            answer = answer.strip().lower()
            if answer in ("a", "always"):
                return "always"
            return "allow" if answer in ("y", "yes") else "deny"

        return approve
