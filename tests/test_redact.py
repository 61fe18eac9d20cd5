"""Redaction at the boundary: known secrets never leave in any printed form.

Written as an attacker (or a careless model) would try: `env`, the kernel's
`/proc/*/environ`, `cat .env`, JSON dumps, shell quoting, URL-encoding, and a
secret split across stream chunks.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

import pytest

from nbagent import redact
from nbagent.events import ToolCall, ToolOutput
from nbagent.redact import (
    Redactor,
    StreamRedactor,
    current_redactor,
    is_secret_name,
    secret_values,
    url_password_contexts,
)
from nbagent.tools.base import ToolError, tool
from nbagent.tools.clip import clip_text
from nbagent.tools.runner import ToolRunner

pytestmark = pytest.mark.usefixtures("in_tmp")

# Secret-shaped values with characters that every escaping changes.
SECRETS = {
    "OPENAI_API_KEY": "sk-proj-Tq3xV9bLm2Pz8Rw4Ky7N",
    "GITHUB_TOKEN": "ghp_7fKc2LmQ9vXzR4tBn8WpJ3sD",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCY",
    "MY_PASSWORD": "p@ss w'rd\"$HOME&x=1",
    "BASIC_AUTH": "dXNlcjpodW50ZXIy",
}
DB_PASSWORD = "Zq8!vR2#mK5p"
NOT_SECRET = {
    "MAX_TURNS": "20",
    "SSH_AUTH_SOCK": "/tmp/x",
    "DEBUG": "true",
    "AUTHOR": "Ada Lovelace",
}


def secret_environ() -> dict[str, str]:
    return {
        **SECRETS,
        "DATABASE_URL": f"postgres://app:{quote(DB_PASSWORD, safe='')}@db.internal:5432/app",
        "CACHE_URL": "redis://cache:pw@localhost:6379",
        **NOT_SECRET,
    }


def make_redactor(environ: dict[str, str] | None = None) -> Redactor:
    environ = secret_environ() if environ is None else environ
    return Redactor(secret_values(environ, {}, []), url_password_contexts(environ, {}, []))


def assert_no_secret(text: str) -> None:
    for value in [*SECRETS.values(), DB_PASSWORD]:
        assert value not in text
        assert json.dumps(value)[1:-1] not in text
        assert quote(value, safe="") not in text


@pytest.fixture
def secrets_in_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in secret_environ().items():
        monkeypatch.setenv(name, value)
    yield


@pytest.fixture(autouse=True)
def _reset_process_state() -> Iterator[None]:
    yield
    redact.set_declared_secrets(())
    redact.set_dotenv_paths(None)
    redact.uninstall_log_redaction()


# --------------------------------------------------------------------------- what is a secret


@pytest.mark.parametrize(
    "name",
    [
        "ANTHROPIC_API_KEY",
        "GITHUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "MY_PASSWORD",
        "PGPASSWD",
        "GOOGLE_APPLICATION_CREDENTIALS_JSON",
        "SSH_PRIVATE",
        "AUTH",
        "AUTH_HEADER",
        "BASIC_AUTH",
        "apikey",
    ],
)
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["AUTHOR", "OAUTHOR_NAME", "MAX_TURNS", "PATH", "HOME", "DEBUG"])
def test_names_that_are_not_secret(name):
    assert not is_secret_name(name)


def test_short_values_numbers_booleans_and_paths_are_not_secrets():
    environ = {
        "MAX_TURNS_TOKEN": "20",
        "SSH_AUTH_SOCK": "/tmp/ssh-XXXX/agent.1234",
        "DEBUG_KEY": "true",
        "ENABLED_SECRET": "off",
        "TIMEOUT_TOKEN": "600000000",
        "RATIO_KEY": "0.123456789",
        "HOME_KEY": "~/secrets/file",
        "REL_KEY": "./relative/path",
        "SHORT_KEY": "abc1234",
    }
    assert secret_values(environ, {}, []) == {}
    text = "MAX_TURNS=20 /tmp/ssh-XXXX/agent.1234 true off 600000000 ~/secrets/file abc1234"
    assert make_redactor(environ).redact(text) == text


def test_ordinary_output_is_left_alone():
    redactor = make_redactor()
    text = "MAX_TURNS=20\nSSH_AUTH_SOCK=/tmp/x\nDEBUG=true\nAUTHOR=Ada Lovelace\nrows: 1,234\n"
    assert redactor.redact(text) == text


# --------------------------------------------------------------------------- printed forms


def test_raw_value_is_replaced_with_its_name():
    redactor = make_redactor()
    out = redactor.redact(f"token is {SECRETS['GITHUB_TOKEN']}.")
    assert out == "token is [redacted:GITHUB_TOKEN]."


def test_proc_environ_nul_separated_dump():
    """The attack of the issue: `tr '\\0' '\\n' < /proc/$PPID/environ`, and its raw form."""
    environ = secret_environ()
    blob = "\0".join(f"{k}={v}" for k, v in environ.items()) + "\0"
    redactor = make_redactor()
    for text in (blob, blob.replace("\0", "\n")):
        out = redactor.redact(text)
        assert_no_secret(out)
        assert "OPENAI_API_KEY=[redacted:OPENAI_API_KEY]" in out
        assert "MAX_TURNS=20" in out and "SSH_AUTH_SOCK=/tmp/x" in out and "DEBUG=true" in out


def test_real_env_and_proc_environ_of_a_child_process(secrets_in_environ):
    """What `env` and `/proc/self/environ` really print, through current_redactor()."""
    for command in (["env"], ["cat", "/proc/self/environ"]):
        raw = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        assert SECRETS["GITHUB_TOKEN"] in raw  # the attack works without redaction
        out = current_redactor().redact(raw)
        assert_no_secret(out)
        assert "[redacted:AWS_SECRET_ACCESS_KEY]" in out


def test_json_escaped():
    redactor = make_redactor()
    out = redactor.redact(json.dumps(secret_environ()))
    assert_no_secret(out)
    assert '"MY_PASSWORD": "[redacted:MY_PASSWORD]"' in out
    assert json.loads(out)["MAX_TURNS"] == "20", "the JSON stays valid"


def test_python_repr_of_environ():
    out = make_redactor().redact(repr(secret_environ()))
    assert_no_secret(out)
    assert "'MY_PASSWORD': '[redacted:MY_PASSWORD]'" in out


def test_shell_escaped_forms_printed_by_bash(monkeypatch):
    monkeypatch.setenv("MY_PASSWORD", SECRETS["MY_PASSWORD"])
    redactor = make_redactor()
    printed = subprocess.run(
        ["bash", "-c", 'printf "%q\\n" "$MY_PASSWORD"; declare -p MY_PASSWORD'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    printed += shlex.quote(SECRETS["MY_PASSWORD"])
    assert SECRETS["MY_PASSWORD"] not in printed, "these forms differ from the raw value"
    out = redactor.redact(printed)
    assert "MY_PASSWORD=[redacted:MY_PASSWORD]" in out or '"[redacted:MY_PASSWORD]"' in out
    assert "ss w" not in out and "HOME&x" not in out


def test_url_encoded():
    redactor = make_redactor()
    value = SECRETS["AWS_SECRET_ACCESS_KEY"]
    text = f"?a={quote(value, safe='')}&b={quote_plus(value)}&c={quote(value)}"
    lower_hex = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(value, safe=""))
    text += f"&d={lower_hex}"
    out = redactor.redact(text)
    assert out == "?a={r}&b={r}&c={r}&d={r}".format(r="[redacted:AWS_SECRET_ACCESS_KEY]")


def test_url_password_everywhere_and_short_one_in_its_url():
    redactor = make_redactor()
    out = redactor.redact(
        f"connect postgres://app:{quote(DB_PASSWORD, safe='')}@db.internal:5432/app\n"
        f"password was {DB_PASSWORD}\n"
        "redis://cache:pw@localhost:6379 and pwd, pw, pwned stay"
    )
    assert_no_secret(out)
    assert "postgres://app:[redacted:DATABASE_URL]@db.internal" in out
    assert "password was [redacted:DATABASE_URL]" in out
    assert "redis://cache:[redacted:CACHE_URL]@localhost" in out
    assert "pwd, pw, pwned stay" in out


def test_longest_form_wins_when_secrets_overlap():
    redactor = Redactor({"abcdefgh": "SHORT_KEY", "abcdefghijkl": "LONG_KEY"})
    assert redactor.redact("abcdefghijkl abcdefgh") == "[redacted:LONG_KEY] [redacted:SHORT_KEY]"


# --------------------------------------------------------------------------- sources


def test_dotenv_values_are_secrets_but_never_enter_the_environment(in_tmp):
    (in_tmp / ".env").write_text("STRIPE_SECRET_KEY=rk_live_51Hx9abcDEFghiJKL\nLOG_LEVEL=debug\n")
    out = current_redactor().redact("cat .env:\nSTRIPE_SECRET_KEY=rk_live_51Hx9abcDEFghiJKL\n")
    assert out == "cat .env:\nSTRIPE_SECRET_KEY=[redacted:STRIPE_SECRET_KEY]\n"
    assert "STRIPE_SECRET_KEY" not in os.environ


def test_a_changed_dotenv_or_environment_rebuilds_the_redactor(in_tmp, monkeypatch):
    first = current_redactor()
    assert current_redactor() is first, "cached while nothing changes"
    (in_tmp / ".env").write_text("NEW_TOKEN=tok_0123456789abcdef\n")
    assert current_redactor().redact("tok_0123456789abcdef") == "[redacted:NEW_TOKEN]"
    monkeypatch.setenv("LATE_API_KEY", "late-0123456789")
    assert current_redactor().redact("late-0123456789") == "[redacted:LATE_API_KEY]"


def test_declared_values():
    redact.set_declared_secrets(["customer-id-4471-XK", "x"])
    out = current_redactor().redact("id customer-id-4471-XK; x stays")
    assert out == "id [redacted:declared]; x stays"


def test_environment_name_wins_over_dotenv_and_declared():
    found = secret_values(
        {"A_TOKEN": "same-value-123"}, {"B_TOKEN": "same-value-123"}, ["same-value-123"]
    )
    assert found == {"same-value-123": "A_TOKEN"}


def test_redact_obj_leaves_image_data_and_thinking_alone():
    redactor = make_redactor()
    token = SECRETS["GITHUB_TOKEN"]
    blocks = [
        {"type": "text", "text": f"found {token}"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": token}},
        {"type": "other", "nested": [token, 3, {"deep": token}]},
        {"type": "thinking", "thinking": f"saw {token}", "signature": "sig"},
    ]
    out = redactor.redact_obj(blocks)
    assert out[0]["text"] == "found [redacted:GITHUB_TOKEN]"
    assert out[1]["source"]["data"] == token
    assert out[2]["nested"] == ["[redacted:GITHUB_TOKEN]", 3, {"deep": "[redacted:GITHUB_TOKEN]"}]
    assert out[3] == blocks[3], "a thinking block keeps the text its signature covers"


def test_redact_clipped_hides_a_secret_cut_by_a_clip():
    redactor = make_redactor()
    token = SECRETS["OPENAI_API_KEY"]
    head, tail = redactor.redact_clipped("start " + token[:12], token[12:] + " end")
    assert head == "start [redacted:partial]" and tail == "[redacted:partial] end"
    assert redactor.redact_clipped("too short sk-", "N end") == ("too short sk-", "N end")


# --------------------------------------------------------------------------- streams


def test_a_secret_split_across_chunks_never_appears():
    redactor = make_redactor()
    token = SECRETS["AWS_SECRET_ACCESS_KEY"]
    text = f"key: {token} and url postgres://app:{quote(DB_PASSWORD, safe='')}@db/ end"
    for size in range(1, 12):
        stream = StreamRedactor(redactor)
        emitted = [stream.feed(text[i : i + size]) for i in range(0, len(text), size)]
        emitted.append(stream.flush())
        joined = "".join(emitted)
        assert joined == redactor.redact(text)
        assert token not in joined and token[:10] not in joined


def test_stream_holds_back_only_what_could_start_a_secret():
    redactor = make_redactor()
    stream = StreamRedactor(redactor)
    assert stream.feed("nothing secret here ") == "nothing secret here "
    token = SECRETS["GITHUB_TOKEN"]
    assert stream.feed("token " + token[:6]) == "token ", "the start of a secret waits"
    assert stream.feed(token[6:] + " done") == "[redacted:GITHUB_TOKEN] done"
    assert stream.feed("ghp") == ""
    assert stream.feed("!") == "ghp!", "released once it cannot be a secret"
    assert stream.flush() == ""


def test_stream_flush_releases_an_unfinished_prefix():
    stream = StreamRedactor(make_redactor())
    assert stream.feed("ends with ghp_7f") == "ends with "
    assert stream.flush() == "ghp_7f"


def test_stream_without_secrets_passes_chunks_through():
    stream = StreamRedactor(Redactor({}))
    assert stream.feed("sk-") == "sk-"


# --------------------------------------------------------------------------- logs and the runner


def test_log_records_are_redacted_on_nbagent_loggers(secrets_in_environ, caplog):
    redact.install_log_redaction()
    token = SECRETS["GITHUB_TOKEN"]
    with caplog.at_level(logging.INFO):
        logging.getLogger("nbagent").info("top %s", token)
        logging.getLogger("nbagent.tools").info("child %s", token)
        try:
            raise RuntimeError(f"failed with {token}")
        except RuntimeError:
            logging.getLogger("nbagent.jupyter").exception("boom")
        logging.getLogger("elsewhere").info("not ours %s", token)
    messages = {r.name: r.getMessage() for r in caplog.records}
    assert messages["nbagent"] == "top [redacted:GITHUB_TOKEN]"
    assert messages["nbagent.tools"] == "child [redacted:GITHUB_TOKEN]"
    assert token not in caplog.text.replace(f"not ours {token}", "")
    assert "failed with [redacted:GITHUB_TOKEN]" in caplog.text
    assert messages["elsewhere"] == f"not ours {token}", "other libraries' logs are theirs"


def test_redacting_filter_on_a_handler():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "v=%s", ("plain",), None)
    assert redact.RedactingFilter().filter(record) and record.getMessage() == "v=plain"


@tool(read_only=True)
def show_environment() -> str:
    """Print the environment like `env`."""
    return "\n".join(f"{k}={v}" for k, v in os.environ.items())


@tool(read_only=True)
def fail_with_secret(value: str) -> str:
    """Fail, quoting the input.

    Args:
        value: anything
    """
    raise ToolError(f"bad value {os.environ['GITHUB_TOKEN']} ({value})")


@tool(read_only=True)
def crash_with_secret() -> str:
    """Crash with a secret in the message."""
    raise ValueError(json.dumps({"password": os.environ["MY_PASSWORD"]}))


@tool(read_only=True)
def blocks_with_secret() -> ToolOutput:
    """Return content blocks and a summary naming a secret."""
    token = os.environ["OPENAI_API_KEY"]
    return ToolOutput(
        [
            {"type": "text", "text": f"key {token}"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
            },
        ],
        summary=f"printed {token}",
    )


@tool(read_only=True)
def long_output_with_secret_at_the_cut() -> str:
    """A long output whose clip point falls inside a secret."""
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    total = 700
    head = len(clip_text("x" * total, 300).split("\n")[0])  # where a 300-char clip cuts
    return ("x" * (head - 10) + secret).ljust(total, "y")


def test_runner_outputs_are_redacted(secrets_in_environ):
    runner = ToolRunner(
        [
            show_environment,
            fail_with_secret,
            crash_with_secret,
            blocks_with_secret,
            long_output_with_secret_at_the_cut,
        ],
        max_output_chars=300,
    )
    calls = [
        ToolCall("1", "show_environment", {}),
        ToolCall("2", "fail_with_secret", {"value": "v"}),
        ToolCall("3", "crash_with_secret", {}),
        ToolCall("4", "blocks_with_secret", {}),
        ToolCall("5", "long_output_with_secret_at_the_cut", {}),
        ToolCall("6", SECRETS["GITHUB_TOKEN"], {}),
    ]
    runner.max_output_chars = 100_000
    outputs = {call.id: output for call, output, _ in runner.run(calls[:4] + calls[5:])}
    runner.max_output_chars = 300
    outputs["5"] = runner.run_one(calls[4])
    for output in outputs.values():
        assert_no_secret(output.text())
        assert_no_secret(output.summary)
    assert "GITHUB_TOKEN=[redacted:GITHUB_TOKEN]" in outputs["1"].text()
    assert outputs["2"].is_error and "[redacted:GITHUB_TOKEN]" in outputs["2"].text()
    assert outputs["3"].is_error and "[redacted:MY_PASSWORD]" in outputs["3"].text()
    assert outputs["4"].summary == "printed [redacted:OPENAI_API_KEY]"
    assert outputs["4"].images()[0]["source"]["data"] == "iVBO"
    assert SECRETS["AWS_SECRET_ACCESS_KEY"][:8] not in outputs["5"].text(), (
        "redacted before clipping"
    )
    assert outputs["6"].is_error and "Unknown tool '[redacted:GITHUB_TOKEN]'" in outputs["6"].text()


def test_runner_tool_log_line_is_redacted(secrets_in_environ, caplog):
    runner = ToolRunner([fail_with_secret])
    token = SECRETS["GITHUB_TOKEN"]
    with caplog.at_level(logging.INFO, logger="nbagent.tools"):
        runner.run_one(ToolCall("1", "fail_with_secret", {"value": token}))
    line = next(r.getMessage() for r in caplog.records if r.name == "nbagent.tools")
    assert line == "[TOOL][fail_with_secret] value=[redacted:GITHUB_TOKEN]"


def test_runner_asks_for_the_redactor_after_the_call(monkeypatch):
    """A tool that sets a new secret variable (run_python can) has it redacted at once."""

    @tool
    def set_token() -> str:
        """Set a token and print it."""
        os.environ["FRESH_TOKEN"] = "fresh-0123456789"
        return "set fresh-0123456789"

    monkeypatch.delenv("FRESH_TOKEN", raising=False)
    try:
        output = ToolRunner([set_token]).run_one(ToolCall("1", "set_token", {}))
    finally:
        os.environ.pop("FRESH_TOKEN", None)
    assert output.text() == "set [redacted:FRESH_TOKEN]"
