"""The terminal surface: the chat REPL through a pseudo-terminal, and `nbagent run`.

The fake Messages API runs in this process; the child connects to 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from nbagent.config import ENV_NAMES
from tests.fake_anthropic import FakeAnthropic, env_for, reply, text, tool_use
from tests.helpers import assert_valid_history

PROMPT = "› "
TIMEOUT = 10


def child_env(server: FakeAnthropic, *, key: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.update(env_for(server))
    if not key:
        del env["ANTHROPIC_API_KEY"]
    env.update(PYTHONUNBUFFERED="1", TERM="dumb", COLUMNS="120", LINES="40")
    return env


@pytest.fixture
def server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as s:
        yield s


def spawn(tmp_path: Path, env: dict[str, str], *args: str) -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "nbagent.cli.main", *args],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        timeout=TIMEOUT,
        dimensions=(40, 120),
    )
    return child


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def wait_for_requests(server: FakeAnthropic, n: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while len(server.requests) < n and time.monotonic() < deadline:
        time.sleep(0.02)


# -- the REPL ------------------------------------------------------------------


def test_repl_session_tool_call_reset_and_exit(tmp_path: Path, server: FakeAnthropic) -> None:
    server.enqueue(
        reply(
            text("Creating it."),
            tool_use("create_file", {"file_path": "hello.txt", "content": "hi there"}),
        ),
        reply(text("Created hello.txt for you.")),
    )
    child = spawn(tmp_path, child_env(server))
    child.expect("Wrote a .env template")
    child.expect("workspace: ")
    child.expect("/help for commands")
    child.expect(PROMPT)

    child.sendline("please make hello.txt")
    child.expect("⚙ create_file file_path=hello.txt content=hi there")
    child.expect("↳ ")
    child.expect("Created hello.txt for you.")
    child.expect(r"[\d,]+ in \(\d+% cached\) · [\d,]+ out · \$\d+\.\d{4} · [\d.]+s")
    child.expect(PROMPT)

    files = list(tmp_path.glob("workspace/session_*/hello.txt"))
    assert len(files) == 1 and files[0].read_text() == "hi there"
    assert not (tmp_path / "hello.txt").exists()
    assert len(server.requests) == 2
    assert len(server.last_body["messages"]) == 3  # prompt, tool_use, tool_result

    child.sendline("/usage")
    child.expect("since start")
    child.expect(PROMPT)

    child.sendline("/reset")
    child.expect("new conversation")
    child.expect(PROMPT)
    server.enqueue("Fresh start.")
    child.sendline("hello again")
    child.expect("Fresh start.")
    child.expect(PROMPT)
    body = server.last_body
    assert len(body["messages"]) == 1
    assert body["messages"][0]["content"][0]["text"] == "hello again"

    child.sendline("")  # empty lines are ignored
    child.sendline("/exit")
    assert finish(child) == 0

    env_text = (tmp_path / ".env").read_text()
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_MODEL_NAME",
        "MAX_TURNS",
        "SYSTEM_PROMPT_FILE",
    ):
        assert f"# {name}=" in env_text


def test_existing_env_file_is_left_alone_and_eof_exits(
    tmp_path: Path, server: FakeAnthropic
) -> None:
    original = "# mine\nMAX_TURNS=7\n"
    (tmp_path / ".env").write_text(original)
    child = spawn(tmp_path, child_env(server))
    child.expect(PROMPT)
    assert "Wrote a .env template" not in child.before
    child.sendeof()
    assert finish(child) == 0
    assert (tmp_path / ".env").read_text() == original


def test_ctrl_c_interrupts_the_turn_not_the_program(tmp_path: Path, server: FakeAnthropic) -> None:
    server.enqueue(reply(text("tick " * 200), delay=0.05))
    child = spawn(tmp_path, child_env(server))
    child.expect(PROMPT)
    child.sendline("count slowly")
    child.expect("tick tick")
    child.sendintr()
    child.expect("Interrupted")
    child.expect(PROMPT)

    server.enqueue("Second answer works.")
    child.sendline("and now?")
    child.expect("Second answer works.")
    child.expect(PROMPT)
    messages = server.last_body["messages"]
    assert_valid_history(messages)
    assert messages[1]["role"] == "assistant"
    assert messages[1]["content"][-1]["text"].endswith("[interrupted]")
    assert messages[-1]["content"][-1]["text"] == "and now?"

    # Ctrl-C at the prompt: a hint, then a second one quits.
    child.sendintr()
    child.expect("Ctrl-C again")
    child.expect(PROMPT)
    time.sleep(0.3)  # a person's second press: readline is reading again by then
    child.sendintr()
    assert finish(child) == 0


def test_ask_mode_asks_before_writing(tmp_path: Path, server: FakeAnthropic) -> None:
    server.enqueue(
        reply(tool_use("create_file", {"file_path": "x.txt", "content": "x"})),
        reply(text("Understood, I did not write it.")),
    )
    child = spawn(tmp_path, child_env(server), "--mode", "ask", "--workspace", "ws")
    child.expect(PROMPT)
    child.sendline("write x.txt")
    child.expect(r"Allow create_file file_path=x.txt content=x\?\s+\[y\]es / \[n\]o / \[a\]lways")
    child.sendline("n")
    child.expect("denied")
    child.expect("Understood, I did not write it.")
    child.expect(PROMPT)
    child.sendline("/quit")
    assert finish(child) == 0
    assert (tmp_path / "ws").is_dir()
    assert not (tmp_path / "ws" / "x.txt").exists()
    assert not (tmp_path / "workspace").exists()


def test_missing_key_keeps_the_repl_running(tmp_path: Path, server: FakeAnthropic) -> None:
    child = spawn(tmp_path, child_env(server, key=False))
    child.expect("ANTHROPIC_API_KEY is not set")
    child.expect(PROMPT)
    child.sendline("hello")
    child.expect("ANTHROPIC_API_KEY is not set")
    child.expect(PROMPT)
    child.sendline("/help")
    child.expect("/reset")
    child.expect(PROMPT)
    child.sendline("/exit")
    assert finish(child) == 0
    assert "Traceback" not in child.before
    assert server.requests == []


# -- nbagent run ---------------------------------------------------------------


def run_cli(
    tmp_path: Path, env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nbagent.cli.main", *args],
        cwd=tmp_path,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_run_prints_the_answer(tmp_path: Path, server: FakeAnthropic) -> None:
    server.enqueue(
        reply(
            text("Let me write it."),
            tool_use("create_file", {"file_path": "out.txt", "content": "42"}),
        ),
        reply(text("The answer is 42.")),
    )
    result = run_cli(tmp_path, child_env(server), "run", "what is the answer?")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "The answer is 42.\n"
    assert "⚙ create_file" in result.stderr
    assert (tmp_path / "out.txt").read_text() == "42"  # run works in the current directory
    assert not (tmp_path / ".env").exists()
    assert not (tmp_path / "workspace").exists()


def test_run_reads_the_prompt_from_stdin(tmp_path: Path, server: FakeAnthropic) -> None:
    server.enqueue("From stdin.")
    result = run_cli(
        tmp_path, child_env(server), "run", "-", "--no-thinking", stdin="piped prompt\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "From stdin.\n"
    body = server.last_body
    assert body["messages"][0]["content"][0]["text"] == "piped prompt\n"
    assert "thinking" not in body


def test_run_without_key_exits_2_with_one_line(tmp_path: Path, server: FakeAnthropic) -> None:
    result = run_cli(tmp_path, child_env(server, key=False), "run", "hello")
    assert result.returncode == 2
    assert "ANTHROPIC_API_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
    assert server.requests == []


def test_run_api_error_exits_1(tmp_path: Path, server: FakeAnthropic) -> None:
    from tests.fake_anthropic import error

    server.enqueue(error(400, "bad request from the fake"))
    result = run_cli(tmp_path, child_env(server), "run", "hello")
    assert result.returncode == 1
    assert "bad request from the fake" in result.stderr
    assert "Traceback" not in result.stderr


def test_version() -> None:
    from nbagent import __version__
    from nbagent.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__


def test_ctrl_c_in_the_renderer_keeps_the_history_valid(
    fake_api: FakeAnthropic, in_tmp: Path
) -> None:
    """A KeyboardInterrupt raised while rendering (not inside the loop) closes the turn."""
    import io

    from rich.console import Console

    from nbagent import Agent
    from nbagent.cli.render import TerminalRenderer
    from nbagent.cli.repl import Repl
    from nbagent.events import TextDelta

    class InterruptingRenderer(TerminalRenderer):
        armed = True

        def handle(self, event):  # type: ignore[no-untyped-def]
            if self.armed and isinstance(event, TextDelta):
                self.armed = False
                raise KeyboardInterrupt
            super().handle(event)

    out = io.StringIO()
    console = Console(file=out, width=120)
    renderer = InterruptingRenderer(console)
    fake_api.enqueue(
        reply(text("I will look."), tool_use("list_directory", {"directory_path": "."})),
        "Fine.",
    )
    repl = Repl(
        lambda: Agent(workspace=in_tmp), console=console, renderer=renderer, workspace=in_tmp
    )
    repl.turn("look around")
    assert "Interrupted" in out.getvalue()
    repl.turn("go on")
    assert "Fine." in out.getvalue()
    assert_valid_history(repl.agent.messages)
    assert repl.agent.messages[-1]["content"][0]["text"] == "Fine."
