"""%%agent and %agent in a real InteractiveShell, against the fake server."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from tests.fake_anthropic import reply, text, thinking, tool_use
from tests.helpers import assert_valid_history


@pytest.fixture
def shell(in_tmp):
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nbagent")
    try:
        yield ip
    finally:
        ip.run_line_magic("unload_ext", "nbagent")
        for name in ("answer", "numbers", "_sales"):
            ip.user_ns.pop(name, None)


def test_load_registers_and_unload_removes_everything(in_tmp):
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nbagent")
    assert "agent" in ip.magics_manager.magics["cell"]
    assert "agent" in ip.magics_manager.magics["line"]
    assert any(type(c).__name__ == "NBAgent" for c in ip.configurables)
    ip.run_line_magic("unload_ext", "nbagent")
    assert "agent" not in ip.magics_manager.magics["cell"]
    assert "agent" not in ip.magics_manager.magics["line"]
    assert not any(type(c).__name__ == "NBAgent" for c in ip.configurables)
    # and it loads again
    ip.run_line_magic("load_ext", "nbagent")
    assert "agent" in ip.magics_manager.magics["cell"]
    ip.run_line_magic("unload_ext", "nbagent")


def test_cell_streams_answer_and_continues_the_conversation(shell, fake_api, capsys):
    fake_api.enqueue(reply(thinking("Consider."), text("First **answer**.")), "Second answer.")
    shell.run_cell_magic("agent", "", "hello")
    shell.run_cell_magic("agent", "", "and again")
    out = capsys.readouterr().out
    assert "First **answer**." in out and "Second answer." in out
    assert "Consider." in out, "thinking is shown unless --quiet"
    assert len(fake_api.last_body["messages"]) == 3


def test_options_new_model_max_turns_mode_quiet(shell, fake_api, capsys):
    fake_api.enqueue("one")
    shell.run_cell_magic("agent", "", "remember me")
    fake_api.enqueue(reply(thinking("secret thoughts"), text("fresh")))
    shell.run_cell_magic("agent", "--new --model claude-sonnet-4-6 --quiet", "who am I")
    body = fake_api.last_body
    assert len(body["messages"]) == 1 and body["model"] == "claude-sonnet-4-6"
    out = capsys.readouterr().out
    assert "secret thoughts" not in out and "fresh" in out
    # per-cell options do not stick
    fake_api.enqueue("back")
    shell.run_cell_magic("agent", "", "again")
    assert fake_api.last_body["model"] == "claude-opus-4-8"
    # --max-turns 1: one tool round, then a forced final answer
    fake_api.enqueue(reply(tool_use("list_variables", {})), "final")
    shell.run_cell_magic("agent", "--max-turns 1", "look")
    # The final answer is asked for in text: a tool_choice change would drop the cache.
    assert "tool_choice" not in fake_api.last_body
    assert "reached its limit of 1 tool rounds" in str(fake_api.last_body["messages"][-1])
    # --mode read-only refuses a write
    fake_api.enqueue(reply(tool_use("create_file", {"file_path": "x.txt", "content": "x"})), "ok")
    shell.run_cell_magic("agent", "--mode read-only", "write")
    from pathlib import Path

    assert not Path("x.txt").exists()
    result = fake_api.last_body["messages"][-1]["content"][0]
    assert result["is_error"] and "read-only" in str(result["content"])


def test_config_traitlets_and_ipython_config(in_tmp, fake_api):
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nbagent")
    try:
        ip.run_line_magic("config", "NBAgent.model = 'claude-haiku-4-5'")
        fake_api.enqueue("hi")
        ip.run_line_magic("agent", "hello there")
        assert fake_api.last_body["model"] == "claude-haiku-4-5"
    finally:
        ip.run_line_magic("unload_ext", "nbagent")
    # ipython_config.py style: c.NBAgent.* on the shell's config
    from nbagent.jupyter.settings import NBAgent

    cfg = Config()
    cfg.NBAgent.max_turns = 7
    cfg.NBAgent.permission_mode = "read-only"
    settings = NBAgent(config=cfg)
    assert settings.max_turns == 7 and settings.permission_mode == "read-only"


def test_line_magic_commands(shell, fake_api, capsys):
    fake_api.enqueue(reply(tool_use("list_variables", {})), "Nothing much.")
    shell.run_line_magic("agent", "what do I have?")
    capsys.readouterr()
    shell.run_line_magic("agent", "usage")
    usage = capsys.readouterr().out
    assert "Session: " in usage and " in (" in usage and " out · $" in usage
    shell.run_line_magic("agent", "history")
    hist = capsys.readouterr().out
    assert "You: what do I have?" in hist and "[tool] list_variables()" in hist
    shell.run_line_magic("agent", "tools")
    tools = capsys.readouterr().out
    for name in ("run_python", "list_variables", "inspect_variable", "read_file", "read_notebook"):
        assert name in tools
    shell.run_line_magic("agent", "model claude-sonnet-4-6")
    assert "claude-sonnet-4-6" in capsys.readouterr().out
    shell.run_line_magic("agent", "config")
    cfg = capsys.readouterr().out
    assert "claude-sonnet-4-6" in cfg and "api_key            set" in cfg and "sk-ant" not in cfg
    shell.run_line_magic("agent", "help")
    assert "%%agent [--new]" in capsys.readouterr().out
    shell.run_line_magic("agent", "reset")
    assert "new conversation" in capsys.readouterr().out
    from nbagent.jupyter.session import get_session

    assert get_session(shell).agent.messages == []


def test_interpolation_and_unknown_names(shell, fake_api, capsys):
    shell.user_ns["numbers"] = list(range(5))
    fake_api.enqueue("ok")
    shell.run_cell_magic("agent", "", 'Sum {numbers}; keep {{braces}} and {"a": 1}')
    sent = fake_api.last_body["messages"][-1]["content"][0]["text"]
    assert sent == 'Sum [0, 1, 2, 3, 4]; keep {braces} and {"a": 1}'
    requests = len(fake_api.requests)
    shell.run_cell_magic("agent", "", "Use {undefined_thing}")
    assert "undefined_thing" in capsys.readouterr().out
    assert len(fake_api.requests) == requests


def test_missing_key_is_one_line(shell, monkeypatch, capsys):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    shell.run_cell_magic("agent", "", "hi")
    out = capsys.readouterr().out
    assert "ANTHROPIC_API_KEY is not set" in out and "Traceback" not in out


def test_run_python_tool_changes_the_user_namespace(shell, fake_api):
    fake_api.enqueue(reply(tool_use("run_python", {"code": "answer = 40 + 2"})), "done")
    shell.run_cell_magic("agent", "", "compute")
    assert shell.user_ns["answer"] == 42
    from nbagent.jupyter.session import get_session

    assert_valid_history(get_session(shell).agent.messages)
