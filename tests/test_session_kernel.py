"""`%config NBAgent.<option>` between `%%agent` turns, in a real kernel (issue 7).

Settings are resolved when each turn starts, so a change holds from the next turn
on. Each test runs a turn, changes one option with `%config`, runs the next turn and
checks what the fake Messages API received (and what the cell showed). One kernel
serves the module; each test starts from a new conversation with no `%config` set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nbagent.config import ENV_NAMES
from tests.fake_anthropic import FakeAnthropic, env_for, reply, text, thinking, tool_use
from tests.helpers import assert_valid_history, result_text, tool_results
from tests.kernel_helpers import Execution, LiveKernel

# Unset every NBAgent trait (None: "not set here") and start a new conversation.
FRESH = """\
from nbagent.jupyter.settings import NBAgent as _NBAgent
for _c in get_ipython().configurables:
    if isinstance(_c, _NBAgent):
        for _name in _c.trait_names(config=True):
            setattr(_c, _name, None)
get_ipython().run_line_magic("agent", "reset")
del _c, _name, _NBAgent
"""


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as s:
        yield s


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("session_kernel")


@pytest.fixture(scope="module")
def kernel(server: FakeAnthropic, workdir: Path) -> Iterator[LiveKernel]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.update(env_for(server))
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("MPLBACKEND", None)
    k = LiveKernel(str(workdir), env=env)
    try:
        loaded = k.execute("%load_ext nbagent")
        assert loaded.status == "ok", loaded.error_text()
        yield k
    finally:
        k.stop()


@pytest.fixture(autouse=True)
def fresh(kernel: LiveKernel, server: FakeAnthropic) -> None:
    run = kernel.execute(FRESH)
    assert run.status == "ok", run.error_text()
    server.clear()


def agent_cell(kernel: LiveKernel, prompt: str) -> Execution:
    run = kernel.execute(f"%%agent\n{prompt}")  # no stdin: "ask" is answered headless
    assert run.status == "ok", run.error_text()
    return run


def config(kernel: LiveKernel, assignment: str) -> None:
    run = kernel.execute(f"%config NBAgent.{assignment}")
    assert run.status == "ok" and not run.text().strip(), run.text() or run.error_text()


def turn_bodies(server: FakeAnthropic, since: int) -> list[dict[str, Any]]:
    return [r["body"] for r in server.requests[since:] if r["path"] == "/v1/messages"]


def last_results(server: FakeAnthropic) -> list[dict[str, Any]]:
    body = server.last_body
    assert body is not None
    return tool_results(body["messages"][-1])


def write_file(name: str) -> Any:
    return reply(tool_use("create_file", {"file_path": name, "content": name}))


# --------------------------------------------------------------------------- permission_mode


def test_permission_mode_from_config_holds_from_the_next_turn(kernel, server, workdir):
    server.enqueue(write_file("auto.txt"), "Made auto.txt.")
    agent_cell(kernel, "make auto.txt")
    assert (workdir / "auto.txt").read_text() == "auto.txt"

    # ask: the next write asks; with no stdin, headless_approval (deny) answers.
    config(kernel, "permission_mode = 'ask'")
    server.enqueue(write_file("ask.txt"), "I could not.")
    run = agent_cell(kernel, "make ask.txt")
    assert "Denied create_file" in run.text() and "headless" in run.text()
    [denied] = last_results(server)
    assert denied["is_error"] and "did not allow" in result_text(denied)
    assert not (workdir / "ask.txt").exists()

    # A kernel-only option changes between turns the same way.
    config(kernel, "headless_approval = 'allow'")
    server.enqueue(write_file("allowed.txt"), "Made it.")
    run = agent_cell(kernel, "make allowed.txt")
    assert "Allowed create_file" in run.text()
    assert (workdir / "allowed.txt").exists()

    # read-only: writes are refused without asking; reads still run.
    config(kernel, "permission_mode = 'read-only'")
    server.enqueue(
        reply(
            tool_use("list_directory", {"directory_path": "."}),
            tool_use("create_file", {"file_path": "ro.txt", "content": "x"}),
        ),
        "Read only.",
    )
    run = agent_cell(kernel, "look, then make ro.txt")
    listed, refused = last_results(server)
    assert not listed.get("is_error") and "auto.txt" in result_text(listed)
    assert refused["is_error"] and "read-only" in result_text(refused)
    assert "headless" not in run.text(), "read-only refuses; it does not ask"
    assert not (workdir / "ro.txt").exists()

    # And back: nothing of the earlier modes sticks.
    config(kernel, "permission_mode = 'auto'")
    server.enqueue(write_file("again.txt"), "Made again.txt.")
    agent_cell(kernel, "make again.txt")
    assert (workdir / "again.txt").exists()
    assert_valid_history(server.last_body["messages"])


# --------------------------------------------------------------------------- request options

Check = Callable[[dict[str, Any]], bool]

DEFAULT_THINKING = {"type": "adaptive", "display": "summarized"}

# option, %config value, the request before (defaults), the request after the change
CHANGES: dict[str, tuple[str, str, Check, Check]] = {
    "model": (
        "model",
        "'claude-haiku-4-5'",
        lambda b: b["model"] == "claude-opus-4-8" and b.get("thinking") == DEFAULT_THINKING,
        # Haiku 4.5 has no adaptive thinking: the whole request plan follows the model.
        lambda b: b["model"] == "claude-haiku-4-5" and "thinking" not in b,
    ),
    "max_tokens": (
        "max_tokens",
        "1234",
        lambda b: b["max_tokens"] == 32_000,
        lambda b: b["max_tokens"] == 1234,
    ),
    "effort-low": (
        "effort",
        "'low'",
        lambda b: "output_config" not in b,
        lambda b: b.get("output_config") == {"effort": "low"},
    ),
    "thinking-off": (
        "thinking",
        "'off'",
        lambda b: b.get("thinking") == DEFAULT_THINKING,
        lambda b: "thinking" not in b,
    ),
    "thinking-omitted": (
        "thinking",
        "'omitted'",
        lambda b: b.get("thinking") == DEFAULT_THINKING,
        lambda b: b.get("thinking") == {"type": "adaptive", "display": "omitted"},
    ),
    "effort-xhigh": (
        "effort",
        "'xhigh'",
        lambda b: "output_config" not in b,
        lambda b: b.get("output_config") == {"effort": "xhigh"},
    ),
}


@pytest.mark.parametrize("case", list(CHANGES))
def test_request_option_from_config_holds_from_the_next_turn(kernel, server, case):
    name, value, before, after = CHANGES[case]
    server.enqueue("First.")
    agent_cell(kernel, "first")
    assert before(server.last_body), server.last_body

    config(kernel, f"{name} = {value}")
    server.enqueue("Second.")
    run = agent_cell(kernel, "second")
    assert "Second." in run.text(), run.text()
    assert after(server.last_body), {k: v for k, v in server.last_body.items() if k != "system"}

    # Unset again: the next turn is back to the default, not a copy kept from before.
    config(kernel, f"{name} = None")
    server.enqueue("Third.")
    agent_cell(kernel, "third")
    assert before(server.last_body), server.last_body
    assert len(server.last_body["messages"]) == 5  # one conversation throughout


def told_to_answer_now(body: dict[str, Any]) -> bool:
    """The request ends the tool rounds: tool use is switched off, or the last user
    message says the turn has reached its limit."""
    if body.get("tool_choice") == {"type": "none"}:
        return True
    last = body["messages"][-1]
    return last["role"] == "user" and any(
        "limit of 1 tool round" in b.get("text", "")
        for b in last["content"]
        if isinstance(b, dict) and b.get("type") == "text"
    )


def test_max_turns_from_config_holds_from_the_next_turn(kernel, server):
    def one_tool_round() -> tuple[Execution, list[dict[str, Any]]]:
        since = len(server.requests)
        server.enqueue(reply(tool_use("list_directory", {"directory_path": "."})), "Listed.")
        run = agent_cell(kernel, "list the files")
        return run, turn_bodies(server, since)

    run, bodies = one_tool_round()
    assert len(bodies) == 2 and not told_to_answer_now(bodies[1])
    assert "Reached the limit" not in run.text()

    config(kernel, "max_turns = 1")
    run, bodies = one_tool_round()
    assert len(bodies) == 2
    assert not told_to_answer_now(bodies[0])
    assert told_to_answer_now(bodies[1]), "after 1 round the model must answer"
    assert "Reached the limit of 1 tool rounds" in run.text()


def test_show_thinking_from_config_holds_from_the_next_turn(kernel, server):
    thought = "Looking at the columns before I answer"
    server.enqueue(reply(thinking(thought), text("Shown.")))
    assert thought in agent_cell(kernel, "think aloud").text()
    config(kernel, "show_thinking = False")
    server.enqueue(reply(thinking(thought), text("Hidden.")))
    run = agent_cell(kernel, "think quietly")
    assert "Hidden." in run.text() and thought not in run.text()
    assert server.last_body["thinking"] == DEFAULT_THINKING, "hidden, not switched off"


def test_workspace_from_config_rebuilds_the_tools_and_says_so_once(kernel, server, workdir):
    (workdir / "sub").mkdir(exist_ok=True)
    server.enqueue(write_file("top.txt"), "Made top.txt.")
    agent_cell(kernel, "make top.txt")
    assert (workdir / "top.txt").exists()

    config(kernel, "workspace = 'sub'")
    server.enqueue(write_file("inner.txt"), "Made inner.txt.")
    run = agent_cell(kernel, "make inner.txt")
    assert (workdir / "sub" / "inner.txt").exists() and not (workdir / "inner.txt").exists()
    assert run.text().count("prompt cache starts over") == 1
    server.enqueue("Nothing changed.")
    assert "prompt cache" not in agent_cell(kernel, "anything new?").text()


def test_config_and_a_cell_flag_in_one_turn(kernel, server):
    """A `%%agent` flag beats `%config` for its cell only; `%config` stays for the next."""
    config(kernel, "max_tokens = 2000")
    server.enqueue("Flagged.")
    run = kernel.execute("%%agent --max-tokens 99\nshort, please")
    assert run.status == "ok", run.error_text()
    assert server.last_body["max_tokens"] == 99
    server.enqueue("Configured.")
    agent_cell(kernel, "and now")
    assert server.last_body["max_tokens"] == 2000


def config_row(shown: str, key: str) -> str:
    [row] = [line for line in shown.splitlines() if line.startswith(key + " ")]
    return row[len(key) :].strip()


def test_agent_config_says_what_the_next_turn_sends(kernel, server):
    config(kernel, "model = 'claude-haiku-4-5'")
    shown = kernel.execute("%agent config").text()
    assert config_row(shown, "model").startswith("claude-haiku-4-5")
    assert config_row(shown, "thinking (sent)").startswith("off"), shown
    config(kernel, "model = None")
    shown = kernel.execute("%agent config").text()
    assert config_row(shown, "model") == "claude-opus-4-8"
    assert config_row(shown, "thinking (sent)") == "adaptive, display summarized", shown


# --------------------------------------------------------------------------- reset vs. the panel

PANEL_TURN = """\
import nbagent
_panel = nbagent.chat()
_panel.send("a slow job")
print(_panel.running)
"""


@pytest.mark.parametrize("how", ["%agent reset", "%%agent --new"])
def test_reset_while_the_panels_turn_runs_python_in_the_kernel(kernel, server, how):
    """The panel's run_python runs on the kernel's main thread (dispatched from its
    worker); a reset typed in a cell meanwhile waits for the turn, then starts over."""
    code = "import time\ntime.sleep(0.5)\npanel_step = 1"

    def respond(body: dict[str, Any]) -> Any:
        # By what is asked, not in order: where the reset lands decides which
        # requests the panel's turn still makes.
        last = body["messages"][-1]["content"]
        if any("fresh question" in b.get("text", "") for b in last):
            return "A fresh start."
        if any(b.get("type") == "tool_result" for b in last):
            return reply(text("x" * 600, chunk=5), delay=0.01)  # a slow answer
        return reply(tool_use("run_python", {"code": code}))

    server.responder = respond
    started = kernel.execute(PANEL_TURN)
    assert started.status == "ok" and started.text().strip() == "True", started.text()
    if how == "%agent reset":
        assert "Started a new conversation." in kernel.execute("%agent reset").text()
        run = agent_cell(kernel, "fresh question")
    else:
        run = kernel.execute("%%agent --new\nfresh question")
        assert run.status == "ok", run.error_text()
    assert "A fresh start." in run.text() and "busy" not in run.text().lower(), run.text()
    body = server.last_body
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert body["messages"][0]["content"][0]["text"].strip() == "fresh question"
    for request in server.requests:
        assert_valid_history(request["body"]["messages"])
    assert kernel.execute("print(_panel.wait(10), _panel.running)").text().split() == [
        "True",
        "False",
    ]
