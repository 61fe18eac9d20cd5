"""Headless runs: what counts as headless, a failed %%agent cell fails the run
(`raise_on_error`), and the failure says which endpoint and model it tried."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anthropic
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbagent.errors import AgentCellError
from nbagent.events import ErrorEvent, TurnEnd
from nbagent.jupyter import headless
from nbagent.jupyter.headless import is_headless, should_raise, turn_failure
from nbagent.loop import describe_error
from nbagent.pump import PumpResult, pump
from tests.fake_anthropic import FakeAnthropic, cut, error, reply, text
from tests.kernel_helpers import LiveKernel

NO_KEY = "ANTHROPIC_API_KEY is not set"


# -- what "headless" means ----------------------------------------------------


class StandInKernel:
    def __init__(self, parent: dict[str, Any] | None, allow_stdin: bool = False) -> None:
        self.parent = parent
        self._allow_stdin = allow_stdin

    def get_parent(self, channel: str | None = None) -> dict[str, Any] | None:
        return self.parent


class StandInShell:
    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel


class StandInBridge:
    def __init__(self, clients: list[str]) -> None:
        self.clients = clients


def execute_request(allow_stdin: bool) -> dict[str, Any]:
    return {"msg_type": "execute_request", "content": {"code": "", "allow_stdin": allow_stdin}}


@pytest.fixture
def frontends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The clients a stand-in bridge reports (empty: no frontend has registered)."""
    clients: list[str] = []
    import nbagent.transport.bridge as transport

    monkeypatch.setattr(transport, "get_bridge", lambda kernel=None: StandInBridge(clients))
    return clients


def test_no_stdin_and_no_frontend_is_headless(frontends: list[str]) -> None:
    shell = StandInShell(StandInKernel(execute_request(allow_stdin=False)))
    assert is_headless(shell)


def test_a_request_that_allows_stdin_is_not_headless(frontends: list[str]) -> None:
    # The kernel's flag says otherwise: the parent request is what counts.
    shell = StandInShell(StandInKernel(execute_request(allow_stdin=True), allow_stdin=False))
    assert not is_headless(shell)


def test_a_registered_frontend_is_not_headless_even_without_stdin(frontends: list[str]) -> None:
    """The JupyterLab sidebar runs its turns with stdin off, but it has a frontend."""
    frontends.append("lab-client")
    shell = StandInShell(StandInKernel(execute_request(allow_stdin=False)))
    assert not is_headless(shell)


def test_without_a_parent_request_the_kernels_flag_decides(frontends: list[str]) -> None:
    assert is_headless(StandInShell(StandInKernel(None, allow_stdin=False)))
    assert not is_headless(StandInShell(StandInKernel({}, allow_stdin=True)))


def test_terminal_ipython_is_not_headless(frontends: list[str]) -> None:
    assert not is_headless(StandInShell(None))
    assert not is_headless(object())


def test_raise_on_error_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    for headless_run in (True, False):
        monkeypatch.setattr(headless, "is_headless", lambda shell, h=headless_run: h)
        assert should_raise("always", None)
        assert not should_raise("never", None)
        assert should_raise("auto", None) is headless_run


# -- what counts as a failed cell ---------------------------------------------


@pytest.mark.parametrize(
    ("end", "failed"),
    [
        (TurnEnd("end_turn"), None),
        (TurnEnd("max_tokens", "The answer was cut off."), None),
        (TurnEnd("max_turns", "Reached the limit."), None),
        (TurnEnd("interrupted", "Interrupted by the user."), None),
        (
            TurnEnd("budget", "The turn budget of $0.10 is spent."),
            "The turn budget of $0.10 is spent.",
        ),
        (TurnEnd("replay_mismatch", "The recorded turn differs."), "The recorded turn differs."),
        (TurnEnd("error", "The API key was rejected."), "The API key was rejected."),
        (TurnEnd("busy", ""), "the turn stopped (busy)"),
    ],
)
def test_turn_failure(end: TurnEnd, failed: str | None) -> None:
    assert turn_failure(PumpResult(end=end)) == failed


def test_an_error_event_fails_the_turn_whatever_its_stop_reason() -> None:
    result = pump([ErrorEvent("boom", RuntimeError("boom")), TurnEnd("end_turn")], lambda e: None)
    assert turn_failure(result) == "boom"


def test_the_cell_error_shows_as_one_line() -> None:
    exc = AgentCellError("ANTHROPIC_API_KEY is not set: export ...")
    assert exc._render_traceback_() == ["AgentCellError: ANTHROPIC_API_KEY is not set: export ..."]


# -- in a shell: the output first, then the exception -------------------------


@pytest.fixture
def shell(in_tmp: Path) -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nbagent")
    try:
        yield ip
    finally:
        ip.run_line_magic("unload_ext", "nbagent")


def set_raise_on_error(shell: Any, value: str) -> None:
    """As `%config NBAgent.raise_on_error = value`, without leaving it in the shell's
    config for the tests after this one."""
    [config] = [c for c in shell.configurables if type(c).__name__ == "NBAgent"]
    config.raise_on_error = value


def test_always_raises_after_the_output_in_a_terminal_shell(shell: Any, capsys: Any) -> None:
    set_raise_on_error(shell, "always")
    result = shell.run_cell("%%agent\nhello")
    assert isinstance(result.error_in_exec, AgentCellError)
    assert NO_KEY in str(result.error_in_exec)
    out = capsys.readouterr().out
    assert out.index(NO_KEY) < out.index("AgentCellError:")
    assert "Traceback" not in out  # one line, not the magic's frames


def test_auto_does_not_raise_in_a_terminal_shell(shell: Any, capsys: Any) -> None:
    result = shell.run_cell("%%agent\nhello")
    assert result.error_in_exec is None and NO_KEY in capsys.readouterr().out


def test_bad_options_fail_the_cell_too(shell: Any, capsys: Any) -> None:
    set_raise_on_error(shell, "always")
    result = shell.run_cell("%%agent --max-turns many\nhello")
    assert isinstance(result.error_in_exec, AgentCellError)
    assert "max_turns" in str(result.error_in_exec) or "max-turns" in str(result.error_in_exec)


def test_a_successful_cell_never_raises(shell: Any, fake_api: FakeAnthropic) -> None:
    set_raise_on_error(shell, "always")
    fake_api.enqueue("All good.")
    assert shell.run_cell("%%agent\nhello").error_in_exec is None


# -- in a real kernel: the request's allow_stdin and a registered frontend decide ----

REGISTER = (
    "from nbagent.transport.bridge import get_bridge\n"
    "from nbagent.transport.protocol import PROTOCOL_VERSION\n"
    "get_bridge().handle_control({'v': PROTOCOL_VERSION, 'type': 'register', "
    "'client_id': 'stand-in-lab', 'path': 'x.ipynb', 'subshell_id': None})\n"
    "print(len(get_bridge().clients))"
)


def kernel_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL="http://127.0.0.1:9", PYTHONUNBUFFERED="1", **extra)
    return env


def test_in_a_kernel_only_headless_requests_raise(in_tmp: Path) -> None:
    kernel = LiveKernel(str(in_tmp), env=kernel_env())
    try:
        assert kernel.execute("%load_ext nbagent").status == "ok"
        # nbconvert, papermill, nbclient: no stdin, no frontend -> the cell fails
        run = kernel.execute("%%agent\nhello", allow_stdin=False)
        assert run.status == "error" and run.reply["content"]["ename"] == "AgentCellError"
        assert NO_KEY in run.text()
        assert run.text().index(NO_KEY) < run.text().index("AgentCellError")  # output first
        # a notebook UI sends allow_stdin: a person reads the message
        assert kernel.execute("%%agent\nhello", allow_stdin=True).status == "ok"
        kernel.execute("%config NBAgent.raise_on_error = 'never'")
        assert kernel.execute("%%agent\nhello").status == "ok"
        kernel.execute("%config NBAgent.raise_on_error = 'always'")
        assert kernel.execute("%%agent\nhello", allow_stdin=True).status == "error"
        # The sidebar's turns run without stdin but with a registered frontend.
        kernel.execute("%config NBAgent.raise_on_error = 'auto'")
        assert kernel.execute(REGISTER).text().strip() == "1"
        run = kernel.execute("%%agent\nhello", allow_stdin=False)
        assert run.status == "ok", run.error_text()
    finally:
        kernel.stop()


# -- jupyter nbconvert --execute: the exit code -------------------------------


def agent_notebook(path: Path, *, never: bool) -> Path:
    nb = new_notebook()
    setup = "%load_ext nbagent"
    if never:
        setup += "\n%config NBAgent.raise_on_error = 'never'"
    nb.cells = [
        new_code_cell(setup),
        new_code_cell("%%agent\nSummarise the data"),
        new_code_cell("print('the next cell ran')"),
    ]
    nbformat.write(nb, path)
    return path


def nbconvert_execute(notebook: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute"]
        + ["--output", "executed.ipynb", str(notebook)],
        cwd=notebook.parent,
        env=kernel_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_nbconvert_fails_when_an_agent_cell_fails(in_tmp: Path) -> None:
    done = nbconvert_execute(agent_notebook(in_tmp / "report.ipynb", never=False))
    assert done.returncode != 0
    assert f"AgentCellError: {NO_KEY}" in done.stderr
    assert not (in_tmp / "executed.ipynb").exists()


def test_nbconvert_passes_with_raise_on_error_never(in_tmp: Path) -> None:
    done = nbconvert_execute(agent_notebook(in_tmp / "report.ipynb", never=True))
    assert done.returncode == 0, done.stderr[-2000:]
    nb = nbformat.read(in_tmp / "executed.ipynb", as_version=4)
    agent_text = "".join(o.get("data", {}).get("text/plain", "") for o in nb.cells[1].outputs)
    assert NO_KEY in agent_text
    assert nb.cells[2].outputs[0]["text"] == "the next cell ran\n"


# -- what a failure says: the endpoint and the model ----------------------------


def api_failure(server_url: str, model: str = "claude-opus-4-8") -> anthropic.APIError:
    from nbagent.providers.anthropic_api import AnthropicProvider

    provider = AnthropicProvider(api_key="sk-ant-fake", base_url=server_url, max_retries=0)
    params = {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    try:
        for _ in provider.stream(params):
            pass
    except anthropic.APIError as exc:
        return exc
    finally:
        provider.close()
    raise AssertionError("the request did not fail")


def test_connection_refused_names_the_url_and_model() -> None:
    message = describe_error(api_failure("http://127.0.0.1:9"))
    assert message == (
        "Could not connect to http://127.0.0.1:9/v1/messages (model claude-opus-4-8): "
        "connection refused. Check ANTHROPIC_BASE_URL."
    )


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            error(401, "invalid x-api-key"),
            "The API key was rejected (401) by {at}: check ANTHROPIC_API_KEY.",
        ),
        (
            error(404, "model: claude-nope"),
            "Not found (404) at {at}: model: claude-nope. Check the model name and ANTHROPIC_BASE_URL.",
        ),
        (error(400, "prompt is too long."), "API error 400: prompt is too long. Sent to {at}."),
        (
            error(529, retry_after=0),
            "The API at {at} is overloaded (529) after retries: try again shortly.",
        ),
        (
            cut(reply(text("partial " * 20)), after_events=4),
            "The connection to {at} failed: the response stream was cut off",
        ),
    ],
)
def test_api_errors_name_the_endpoint_and_model(response: Any, expected: str) -> None:
    with FakeAnthropic() as server:
        server.enqueue(response)
        message = describe_error(api_failure(server.url, model="claude-haiku-4-5"))
        at = f"{server.url}/v1/messages (model claude-haiku-4-5)"
    assert message.startswith(expected.format(at=at)), message
    assert ".." not in message


def test_the_url_shown_leaves_out_credentials() -> None:
    message = describe_error(api_failure("http://user:hunter2@127.0.0.1:9/proxy"))
    assert "hunter2" not in message and "user@" not in message
    assert "http://127.0.0.1:9/proxy/v1/messages" in message


def test_a_model_passed_in_is_used_when_the_request_has_none() -> None:
    exc = anthropic.APIConnectionError(
        message="Connection error.",
        request=__import__("httpx2").Request("POST", "http://h:1/v1/messages"),
    )
    assert "(model claude-sonnet-4-6)" in describe_error(exc, model="claude-sonnet-4-6")
