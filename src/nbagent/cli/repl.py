"""The interactive chat loop of `nbagent`.

Input is read with the built-in `input()` (with `readline` line editing when
stdin is a terminal): it behaves the same in a real terminal, a pseudo-terminal
and a pipe. Ctrl-C during a turn stops the turn, not the program; the Agent's
loop keeps the conversation valid, so the next prompt continues it.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.text import Text

from .._version import __version__
from ..agent import Agent, ApproveCallable
from ..config import missing_key_message
from ..errors import ConfigError
from ..events import Event, ToolCall, Usage
from ..pump import pump
from .render import TerminalRenderer, format_args, format_usage

PROMPT = "› "

HELP = """\
Commands:
  /help    show this help
  /usage   tokens and cost so far
  /reset   start a new conversation (same workspace)
  /exit    quit (also /quit or Ctrl-D)
Ctrl-C stops a running turn; at the prompt, press it twice to quit."""

_COMMAND = re.compile(r"^/[A-Za-z-]+$")

Reader = Callable[[str], str]


def make_terminal_approve(renderer: TerminalRenderer, read: Reader = input) -> ApproveCallable:
    """An approve callable that asks `Allow <tool> <args>?` then `[y]es / [n]o / [a]lways`.

    The question is a line of its own, so the input prompt stays short (a long
    readline prompt scrolls sideways on narrow or dumb terminals). End of input
    counts as "no".
    """

    def approve(call: ToolCall) -> str:
        args = format_args(call.input)
        renderer.line(Text(f"Allow {call.name}{' ' + args if args else ''}?", style="bold yellow"))
        while True:
            try:
                answer = read("[y]es / [n]o / [a]lways › ").strip().lower()
            except EOFError:
                renderer.info("(no answer: denied)")
                return "deny"
            if answer in ("y", "yes"):
                return "allow"
            if answer in ("n", "no"):
                return "deny"
            if answer in ("a", "always"):
                return "always"
            renderer.info("Please answer y, n or a.")

    return approve


def has_key(agent: Agent) -> bool:
    settings = agent.current_settings()
    return bool(settings.api_key or settings.auth_token)


def enable_line_editing() -> None:
    """Arrow keys and history for `input()` when stdin is a terminal."""
    if not sys.stdin.isatty():
        return
    try:
        import readline  # noqa: F401  (importing it is what enables line editing)
    except ImportError:  # pragma: no cover - e.g. Windows without pyreadline
        pass


class Repl:
    """The chat loop: reads prompts and commands, renders each turn.

    `make_agent` builds the Agent; it is called again only while no API key is
    configured, so that a key added to `.env` mid-session is picked up.
    """

    def __init__(
        self,
        make_agent: Callable[[], Agent],
        *,
        console: Console,
        renderer: TerminalRenderer,
        workspace: Path,
        read: Reader = input,
        verbose: bool = False,
    ) -> None:
        self.make_agent = make_agent
        self.agent = make_agent()
        self.console = console
        self.renderer = renderer
        self.workspace = workspace
        self.read = read
        self.verbose = verbose
        self.total = Usage()  # across /reset, for /usage
        self._had_key = has_key(self.agent)
        self._resumed: str | None = None  # what the banner says about a resumed chat

    def keep_conversation(self, *, resume: bool = False) -> None:
        """Save the conversation in the workspace's `.nbagent/` after each turn (for
        `nbagent --resume`); with `resume`, continue the one saved there last."""
        from ..record.keeper import ConversationKeeper
        from ..record.location import workspace_location

        keeper = ConversationKeeper(lambda: workspace_location(self.workspace))
        session = self.agent.session
        session.turn_end_hooks.append(lambda session, run: keeper.save(session))
        if not resume:
            return
        saved = keeper.latest(session)
        if saved is None or not saved.messages:
            self._resumed = "No saved conversation in this workspace: starting a new one."
            return
        keeper.adopt(session, saved)
        n = saved.turns
        self._resumed = f"Resumed the conversation ({n} prompt{'s' if n != 1 else ''})."

    # -- main loop ------------------------------------------------------------

    def banner(self) -> None:
        agent = self.agent
        line = Text("nbagent ", style="bold")
        line.append(__version__)
        line.append(f" · model {agent.model} · mode {agent.permission_mode}", style="")
        self.console.print(line, soft_wrap=True)
        self.console.print(Text(f"workspace: {self.workspace}"), soft_wrap=True)
        if self._resumed:
            self.renderer.info(self._resumed, style="green")
        if not has_key(agent):
            self.renderer.error(missing_key_message())
        self.console.print(
            Text("/help for commands · Ctrl-C stops a turn · Ctrl-D exits", style="dim"),
            soft_wrap=True,
        )

    def run(self) -> int:
        self.banner()
        interrupted = False
        while True:
            try:
                line = self.read(PROMPT)
            except EOFError:
                self.console.print()
                return 0
            except KeyboardInterrupt:
                self.console.print()
                if interrupted:
                    return 0
                self.renderer.info("(Ctrl-C again to quit, or type /exit)")
                interrupted = True
                continue
            interrupted = False
            line = line.strip()
            if not line:
                continue
            if _COMMAND.match(line):
                if not self.command(line[1:].lower()):
                    return 0
                continue
            self.turn(line)

    def command(self, name: str) -> bool:
        """Run a /command; False means quit."""
        if name in ("exit", "quit"):
            return False
        if name == "help":
            self.console.print(HELP, markup=False, highlight=False)
        elif name == "reset":
            self.agent.reset()
            self.renderer.info("Started a new conversation.", style="green")
        elif name == "usage":
            self.renderer.info(f"this conversation: {format_usage(self.agent.usage)}", style="")
            self.renderer.info(f"since start:       {format_usage(self.total)}", style="")
        else:
            self.renderer.error(f"Unknown command /{name}: /help lists the commands.")
        return True

    # -- turns ----------------------------------------------------------------

    def turn(self, prompt: str) -> None:
        if not self._ensure_key():
            return
        self.renderer.begin_turn()
        try:
            pump(self.agent.stream(prompt), self._show)
        except Exception as exc:  # a bug must not end the session
            self.renderer.error(f"{type(exc).__name__}: {exc}")
            if self.verbose:
                self.console.print(traceback.format_exc(), markup=False, highlight=False)

    def _show(self, event: Event) -> None:
        if isinstance(event, Usage):
            self.total = self.total + event
        self.renderer.handle(event)

    def _ensure_key(self) -> bool:
        """Settings are read at each turn, so a key added to `.env` mid-session counts."""
        try:
            if has_key(self.agent):
                if not self._had_key:
                    self.renderer.info("Found an API key; using it from now on.", style="green")
                self._had_key = True
                return True
        except ConfigError as exc:
            self.renderer.error(str(exc))
            return False
        self.renderer.error(missing_key_message())
        return False
