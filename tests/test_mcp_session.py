"""MCP servers wired into the session, as users configure them: `Agent(mcp_servers=...)`,
and a `.mcp.json` in the working directory of a notebook's IPython shell.

The servers are the real stdio test server (`tests/mcp_servers/stdio_server.py`); the
model is the fake Messages API. What is proved: the servers' tools are called through
turns and stay up across them, their secrets are redacted, a `.mcp.json` server never
starts in read-only mode nor without the user's allow (asked on stdin, or
`%agent mcp allow NAME`), and `%unload_ext` stops them."""

from __future__ import annotations

import builtins
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import StdinNotImplementedError
from IPython.core.interactiveshell import InteractiveShell

from nbagent import Agent
from tests.fake_anthropic import reply, tool_use
from tests.helpers import assert_valid_history, result_text, tool_results
from tests.test_mcp import STARTUP, stdio_entry

pytestmark = pytest.mark.timeout(600)

SECRET = "tok-9f8e7d6c5b4a"  # the API_TOKEN stdio_entry declares in the server's env


def last_results(fake_api: Any) -> list[dict[str, Any]]:
    return tool_results(fake_api.last_body["messages"][-1])


def tool_names(fake_api: Any) -> list[str]:
    return [t["name"] for t in fake_api.last_body.get("tools", [])]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- Agent(mcp_servers=...) ------------------------------------------------------------


def test_an_agents_mcp_servers_start_at_the_first_turn_and_serve_every_turn(fake_api, in_tmp):
    agent = Agent(
        mcp_servers={"notes": stdio_entry(in_tmp / "notes.txt")},
        mcp_startup_timeout=STARTUP,
        permission_mode="auto",
    )
    try:
        assert agent.session.mcp is None, "nothing starts before the first turn"
        assert not any(t.name.startswith("mcp__") for t in agent.tools)
        fake_api.enqueue(
            reply(
                tool_use("mcp__notes__echo", {"text": f"the token is {SECRET}"}),
                tool_use("mcp__notes__save_note", {"note": "first"}),
                tool_use("mcp__notes__pid", {}),
            ),
            "saved",
        )
        assert agent.run("save a note").text == "saved"
        echo, save, pid_result = last_results(fake_api)
        # The server's secret is redacted in what goes back to the model.
        assert result_text(echo) == "echo: the token is [redacted:declared]"
        assert result_text(save) == "saved"
        assert (in_tmp / "notes.txt").read_text() == "first\n"
        pid = int(result_text(pid_result))
        names = tool_names(fake_api)
        assert names == sorted(names), "the tool list is sorted (the prompt cache holds)"
        assert {"mcp__notes__echo", "mcp__notes__wipe_notes", "create_file"} <= set(names)

        # The next turn uses the same server process and the same tool list.
        fake_api.enqueue(reply(tool_use("mcp__notes__pid", {})), "same")
        agent.run("again")
        assert int(result_text(last_results(fake_api)[0])) == pid
        assert tool_names(fake_api) == names
        assert_valid_history(agent.messages)
        assert "mcp__notes__echo  [read]" in agent.session.mcp_status_text()
    finally:
        agent.session.close()
    assert not alive(pid), "close() stops the server"
    assert not any(t.name.startswith("mcp__") for t in agent.tools)


def test_ask_and_read_only_modes_apply_to_mcp_tools_by_their_category(fake_api, in_tmp):
    asked: list[str] = []

    def approve(call: Any) -> str:
        asked.append(call.name)
        return "deny"

    agent = Agent(
        mcp_servers={"notes": stdio_entry(in_tmp / "notes.txt")},
        mcp_startup_timeout=STARTUP,
        permission_mode="auto",
        approve=approve,
    )
    (in_tmp / "notes.txt").write_text("kept\n")
    try:
        # The server starts in auto mode (a setting's server); ask then gates its tools.
        fake_api.enqueue(reply(tool_use("mcp__notes__echo", {"text": "up"})), "up")
        agent.run("start")
        fake_api.enqueue(
            reply(
                tool_use("mcp__notes__echo", {"text": "x"}),
                tool_use("mcp__notes__wipe_notes", {}),
            ),
            "ok",
        )
        agent.run("wipe", permission_mode="ask")
        echo, wipe = last_results(fake_api)
        assert asked == ["mcp__notes__wipe_notes"], "a read tool is not asked for"
        assert not echo.get("is_error") and wipe["is_error"]
        fake_api.enqueue(reply(tool_use("mcp__notes__save_note", {"note": "no"})), "ok")
        agent.run("write", permission_mode="read-only")
        (save,) = last_results(fake_api)
        assert save["is_error"] and "read-only" in result_text(save)
        assert (in_tmp / "notes.txt").read_text() == "kept\n"
    finally:
        agent.session.close()


def test_without_servers_a_turn_loads_nothing_of_mcp(fake_api, in_tmp):
    fake_api.enqueue("hi")
    code = (
        "import sys\n"
        "from nbagent import Agent\n"
        "assert Agent(permission_mode='auto').run('hi').text == 'hi'\n"
        "assert not [m for m in sys.modules if m.startswith(('nbagent.mcp', 'mcp'))]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=in_tmp, env=dict(os.environ))


# -- a notebook's .mcp.json ------------------------------------------------------------


@pytest.fixture
def shell(in_tmp):
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nbagent")
    ip.run_line_magic("config", f"NBAgent.mcp_startup_timeout = {STARTUP}")
    try:
        yield ip
    finally:
        ip.run_line_magic("unload_ext", "nbagent")
        ip.config.NBAgent.pop("mcp_startup_timeout", None)


def project_file(folder: Path, entry: dict[str, Any]) -> None:
    (folder / ".mcp.json").write_text(json.dumps({"mcpServers": {"cloned": entry}}))


def touching_entry(folder: Path) -> dict[str, Any]:
    """A command that leaves a file behind if it ever runs."""
    return {"command": sys.executable, "args": ["-c", f"open({str(folder / 'RAN')!r}, 'w')"]}


class Stdin:
    """The user at the keyboard: answers `input()` prompts, and remembers them."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.prompts: list[str] = []

    def __call__(self, prompt: str = "") -> str:
        self.prompts.append(prompt)
        if self.answer is None:  # a kernel without stdin (nbclient, the sidebar)
            raise StdinNotImplementedError("no stdin")
        return self.answer


def test_a_project_mcp_json_never_runs_in_read_only_mode_nor_without_an_allow(
    shell, fake_api, in_tmp, monkeypatch, capsys
):
    project_file(in_tmp, touching_entry(in_tmp))
    stdin = Stdin("n")
    monkeypatch.setattr(builtins, "input", stdin)

    fake_api.enqueue("read-only turn")
    shell.run_cell_magic("agent", "--mode read-only", "hello")
    assert stdin.prompts == [], "read-only starts no server and asks nothing"
    assert "MCP server 'cloned' was not started: the session is read-only." in (
        capsys.readouterr().out
    )

    fake_api.enqueue("auto turn", "second auto turn")
    shell.run_cell_magic("agent", "", "hello again")
    shell.run_cell_magic("agent", "", "and again")
    (prompt,) = stdin.prompts  # asked once for this configuration
    assert "MCP server 'cloned' from " + str(in_tmp / ".mcp.json") in prompt and "RAN" in prompt
    out = capsys.readouterr().out
    assert "MCP server 'cloned' was not started: you did not allow it." in out
    assert not (in_tmp / "RAN").exists(), "the cloned folder's command never ran"
    assert not any(n.startswith("mcp__") for n in tool_names(fake_api))

    shell.run_line_magic("agent", "mcp")
    assert "cloned (stdio, from " in capsys.readouterr().out


def test_an_allowed_project_server_starts_and_stops_at_unload(
    shell, fake_api, in_tmp, monkeypatch, capsys
):
    project_file(in_tmp, stdio_entry(in_tmp / "notes.txt"))
    stdin = Stdin(None)  # no stdin: the server needs %agent mcp allow
    monkeypatch.setattr(builtins, "input", stdin)

    shell.run_line_magic("agent", "mcp")
    status = capsys.readouterr().out
    assert "cloned (stdio, from " in status and "not started" in status
    fake_api.enqueue("no server yet")
    shell.run_cell_magic("agent", "", "hello")
    out = capsys.readouterr().out
    assert "Did not allow MCP server 'cloned'" in out and "headless_approval='deny'" in out
    assert not any(n.startswith("mcp__") for n in tool_names(fake_api))

    shell.run_line_magic("agent", "mcp allow cloned")
    assert "Allowed MCP server 'cloned'" in capsys.readouterr().out
    fake_api.enqueue(reply(tool_use("mcp__cloned__pid", {})), "started")
    shell.run_cell_magic("agent", "", "use it")
    pid = int(result_text(last_results(fake_api)[0]))
    assert alive(pid)
    assert len(stdin.prompts) == 1, "an allowed configuration is not asked for again"
    shell.run_line_magic("agent", "mcp")
    status = capsys.readouterr().out
    assert "cloned (stdio, from " in status and ": running" in status
    assert "mcp__cloned__echo  [read]" in status

    shell.run_line_magic("unload_ext", "nbagent")
    try:
        assert not alive(pid), "%unload_ext stops the servers"
    finally:
        shell.run_line_magic("load_ext", "nbagent")


def test_an_allow_before_the_first_turn_holds_for_it(shell, fake_api, in_tmp, monkeypatch, capsys):
    project_file(in_tmp, stdio_entry(in_tmp / "notes.txt"))
    stdin = Stdin("n")
    monkeypatch.setattr(builtins, "input", stdin)
    shell.run_line_magic("agent", "mcp allow nobody")
    assert "no MCP server is named 'nobody'" in capsys.readouterr().out
    shell.run_line_magic("agent", "mcp allow cloned")
    assert "Allowed MCP server 'cloned'" in capsys.readouterr().out
    fake_api.enqueue(reply(tool_use("mcp__cloned__echo", {"text": "hi"})), "done")
    shell.run_cell_magic("agent", "", "use it")
    assert result_text(last_results(fake_api)[0]) == "echo: hi"
    assert stdin.prompts == []
    assert "read-only" not in capsys.readouterr().out, "the probe's own notice is not shown"
