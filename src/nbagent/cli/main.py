"""`nbagent`: chat with the agent in a terminal, or `nbagent run "prompt"` once.

    nbagent                      interactive chat in ./workspace/session_YYYYMMDD_HHMMSS
    nbagent --workspace DIR      interactive chat working in DIR
    nbagent --resume             continue the last chat (its workspace and conversation)
    nbagent run "prompt"         one prompt; the answer on stdout, tool activity on stderr
    echo "prompt" | nbagent run -

Exit codes of `run`: 0 done, 1 API or other failure, 2 configuration problem
(missing API key, bad setting, bad arguments), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from .._version import __version__
from ..agent import Agent, ApproveCallable
from ..config import resolve
from ..errors import ConfigError
from ..events import Event, TextDelta, ToolCall, Usage
from ..options import CLI_OPTIONS
from ..pump import pump
from ..session import check_options
from .render import TerminalRenderer, show_tool_logs

ENV_TEMPLATE = """\
# nbagent settings: uncomment a line and fill it in.
# Environment variables take precedence over this file.
# ANTHROPIC_API_KEY=sk-ant-...
# ANTHROPIC_BASE_URL=https://api.anthropic.com
# ANTHROPIC_MODEL_NAME=claude-opus-4-8
# MAX_TURNS=100
# SYSTEM_PROMPT_FILE=system_prompt.txt
"""


# -- arguments -----------------------------------------------------------------


def _add_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options shared by chat and `run`.

    On the `run` subparser their defaults are suppressed, so that
    `nbagent --model X run ...` is not reset by the subparser's defaults.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    for opt in CLI_OPTIONS:
        env = f"; env {opt.env}" if opt.env else ""
        default_text = "unset" if opt.default is None else opt.default
        parser.add_argument(
            opt.cli_flag,
            dest=opt.name,
            choices=list(opt.choices) if opt.choices else None,
            default=default(None),
            metavar=None if opt.choices else opt.name.upper().replace("_", "-").split("-")[-1],
            help=f"{opt.help} (default: {default_text}{env})",
        )
    parser.add_argument(
        "--workspace",
        default=default(None),
        metavar="DIR",
        help="directory the agent's tools work in (chat default: a new workspace/session_* dir; run default: the current dir)",
    )
    parser.add_argument(
        "--no-thinking",
        action="store_true",
        default=default(False),
        help="same as --thinking off",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        default=default(False),
        help="show tool log lines ([TOOL][name] key=value)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbagent",
        description="Chat with nbagent, an AI agent powered by Claude, in the terminal.",
    )
    parser.add_argument("--version", action="version", version=f"nbagent {__version__}")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the last chat: its workspace (or --workspace DIR) and its conversation",
    )
    _add_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="{run}")
    run = sub.add_parser(
        "run",
        help="answer one prompt without interaction",
        description="Answer one prompt: the answer goes to stdout, tool activity to stderr.",
    )
    run.add_argument("prompt", help='the prompt, or "-" to read it from stdin')
    _add_options(run, suppress=True)
    return parser


# -- shared helpers ------------------------------------------------------------


def write_env_template(path: Path) -> bool:
    """Create a commented `.env` template; never touches an existing file. True if written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:  # exists (even as a dangling link), or the directory is read-only
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(ENV_TEMPLATE)
    return True


def new_session_dir(base: Path) -> Path:
    """Create `base/workspace/session_YYYYMMDD_HHMMSS` (with a suffix if taken)."""
    root = base / "workspace"
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("session_%Y%m%d_%H%M%S")
    path, n = root / stamp, 2
    while True:
        try:
            path.mkdir()
            return path.resolve()
        except FileExistsError:
            path, n = root / f"{stamp}_{n}", n + 1


def last_session_dir(base: Path) -> Path | None:
    """The `workspace/session_*` directory under `base` whose conversation was saved last."""
    from ..record.location import workspace_location

    newest: tuple[float, Path] | None = None
    for candidate in (base / "workspace").glob("session_*"):
        conversations = workspace_location(candidate).folder / "conversations"
        for saved in conversations.glob("*.json"):
            mtime = saved.stat().st_mtime
            if newest is None or mtime > newest[0]:
                newest = (mtime, candidate)
    return newest[1].resolve() if newest is not None else None


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options = {o.name: getattr(args, o.name, None) for o in CLI_OPTIONS}
    if getattr(args, "no_thinking", False):
        options["thinking"] = "off"
    return options


def _mode(args: argparse.Namespace) -> str:
    """The permission mode the session will use (flags, environment, `.env`, default)."""
    return resolve(check_options(_options(args))).permission_mode


def make_agent(args: argparse.Namespace, workspace: Path, approve: ApproveCallable | None) -> Agent:
    return Agent(workspace=workspace, approve=approve, **_options(args))


# -- chat ----------------------------------------------------------------------


def chat(args: argparse.Namespace) -> int:
    from .repl import Repl, enable_line_editing, make_terminal_approve

    console = Console(highlight=False)
    cwd = Path.cwd()
    env_file = cwd / ".env"
    if write_env_template(env_file):
        hint = (
            "your key comes from the environment"
            if os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")
            else "uncomment ANTHROPIC_API_KEY there and add your key"
        )
        console.print(
            Text(f"Wrote a .env template to {env_file}: {hint}.", style="green"),
            soft_wrap=True,
        )
    resumed = None if args.workspace or not args.resume else last_session_dir(cwd)
    if args.resume and not args.workspace and resumed is None:
        console.print(
            Text(f"No saved chat under {cwd / 'workspace'}: starting a new one.", style="yellow"),
            soft_wrap=True,
        )
    created = args.workspace is None and resumed is None
    if resumed is not None:
        workspace = resumed
    else:
        workspace = new_session_dir(cwd) if created else Path(args.workspace).expanduser().resolve()
    ask = _mode(args) == "ask"
    renderer = TerminalRenderer(console, interactive_approval=ask)
    if args.verbose:
        show_tool_logs(renderer)
    enable_line_editing()
    approve = make_terminal_approve(renderer) if ask else None
    try:
        repl = Repl(
            lambda: make_agent(args, workspace, approve),
            console=console,
            renderer=renderer,
            workspace=workspace,
            verbose=args.verbose,
        )
    except ConfigError:
        if created:
            try:
                workspace.rmdir()  # leave no empty session dir behind
            except OSError:
                pass
        raise
    repl.keep_conversation(resume=args.resume)
    return repl.run()


# -- run -----------------------------------------------------------------------


def _read_on_stderr(question: str) -> str:
    """Ask on stderr (stdout carries the answer) and read a line from stdin."""
    sys.stderr.write(question)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line


def _deny_without_terminal(renderer: TerminalRenderer) -> Callable[[ToolCall], str]:
    def approve(call: ToolCall) -> str:
        renderer.info(f"{call.name} denied: --mode ask needs a terminal to ask on", style="yellow")
        return "deny"

    return approve


def run_once(args: argparse.Namespace) -> int:
    from .repl import make_terminal_approve

    err = Console(stderr=True, highlight=False)
    from_stdin = args.prompt == "-"
    prompt = sys.stdin.read() if from_stdin else args.prompt
    if not prompt.strip():
        err.print(Text("nbagent run: the prompt is empty", style="bold red"), soft_wrap=True)
        return 2
    workspace = Path(args.workspace).expanduser() if args.workspace else Path.cwd()
    live = sys.stdout.isatty()
    ask = _mode(args) == "ask"
    renderer = TerminalRenderer(
        err,
        text_console=Console(highlight=False),
        stream_text=live,
        interactive_approval=ask,
    )
    if args.verbose:
        show_tool_logs(renderer)
    approve: ApproveCallable | None = None
    if ask:
        if sys.stdin.isatty() and not from_stdin:
            approve = make_terminal_approve(renderer, read=_read_on_stderr)
        else:
            approve = _deny_without_terminal(renderer)
    agent = make_agent(args, workspace, approve)

    answer: list[str] = []  # text of the latest model message that had text
    current: list[str] = []

    def show(event: Event) -> None:
        nonlocal answer, current
        if isinstance(event, TextDelta):
            current.append(event.text)
        elif isinstance(event, Usage) and current:
            answer, current = current, []
        renderer.handle(event)

    result = pump(agent.stream(prompt), show)
    code = 0
    if result.error is not None:
        code = 2 if isinstance(result.error, ConfigError) else 1
    elif result.stop_reason == "interrupted":
        code = 130
    elif result.stop_reason.startswith("awaiting_") or result.busy:
        code = 1
    if current:  # an interrupted or failed message's partial text
        answer = current
    renderer.break_line()
    if not live:
        text = "".join(answer)
        if text:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            sys.stdout.flush()
    return code


# -- entry point ---------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return run_once(args)
        return chat(args)
    except ConfigError as exc:
        Console(stderr=True, highlight=False).print(
            Text(f"nbagent: {exc}", style="bold red"), soft_wrap=True
        )
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
