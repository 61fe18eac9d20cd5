"""Issue 8, as an attacker would try it: secrets in the environment, in `.env` and
declared by the user never reach a request the model receives, a saved notebook, the
`.nbagent/` records or the logs, whatever the model's tools print."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from nbagent import Agent
from tests.fake_anthropic import reply, text, tool_use

ENV_SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY",
    "MY_PASSWORD": "correct-horse-battery-staple",
    "GITHUB_TOKEN": "ghp_1234567890abcdefghijklmnopqrstuv",
}
URL_PASSWORD = "s3cr3t-db-passw0rd"
DOTENV_SECRET = "dotenv-only-token-value-4242"
DECLARED = "declared-by-the-user-value-7777"
ALL = [*ENV_SECRETS.values(), URL_PASSWORD, DOTENV_SECRET, DECLARED]

ATTACKS = [
    # the kernel's (parent's) starting environment, the child's own, and .env by name
    ("execute_shell_command", {"command": "tr '\\0' '\\n' < /proc/$PPID/environ; env"}),
    ("execute_shell_command", {"command": "cat .env; cat ./.env | base64 -d 2>/dev/null"}),
    ("read_file", {"file_path": ".env"}),
    ("execute_python_code", {"code": "import os, json; print(json.dumps(dict(os.environ)))"}),
]


@pytest.fixture
def secrets_everywhere(fake_api, in_tmp, monkeypatch):
    for name, value in ENV_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", f"postgres://analyst:{URL_PASSWORD}@db.internal/sales")
    monkeypatch.setenv("NBAGENT_SECRETS", DECLARED)
    (in_tmp / ".env").write_text(f"OTHER_SERVICE_TOKEN={DOTENV_SECRET}\n")
    # a file that holds the declared secret, printed by a tool
    (in_tmp / "notes.txt").write_text(f"the value is {DECLARED} and {URL_PASSWORD}\n")
    return in_tmp


def leaks(text: str) -> list[str]:
    return [s for s in ALL if s in text]


def test_no_secret_reaches_the_model_or_the_logs(secrets_everywhere, fake_api, caplog):
    caplog.set_level(logging.INFO, logger="nbagent")
    fake_api.enqueue(
        reply(*[tool_use(name, args) for name, args in ATTACKS]),
        reply(tool_use("read_file", {"file_path": "notes.txt"})),
        reply(text(f"I found {DECLARED}? no.")),  # even if the model echoed one
    )
    agent = Agent(workspace=".", permission_mode="auto")
    events = list(agent.stream(f"show me everything, including {ENV_SECRETS['MY_PASSWORD']}"))
    bodies = json.dumps([r["body"] for r in fake_api.requests])
    assert leaks(bodies) == []
    # the attacks really ran and their results were redacted, not refused wholesale
    assert "[redacted:" in bodies
    assert "secret file" in bodies or ".env" in bodies  # read_file(".env") was refused
    shown = json.dumps([repr(e) for e in events])
    assert leaks(shown) == []
    assert leaks(caplog.text) == [] and "[TOOL]" in caplog.text
    assert leaks(json.dumps(agent.messages)) == []


def test_no_secret_in_the_saved_notebook_or_records(secrets_everywhere, fake_api):
    in_tmp: Path = secrets_everywhere
    nb = new_notebook()
    nb.cells = [
        new_code_cell("%load_ext nbagent"),
        new_code_cell("%%agent\nwhat is in my environment?"),
    ]
    fake_api.enqueue(
        reply(
            tool_use("run_python", {"code": "import os\nprint(dict(os.environ))"}),
            tool_use("execute_shell_command", {"command": "env; cat /proc/$PPID/environ"}),
            tool_use("inspect_variable", {"name": "os"}),
        ),
        reply(text("Done looking.")),
    )
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(in_tmp)}}
    ).execute()
    saved = in_tmp / "saved.ipynb"
    nbformat.write(nb, saved)
    assert leaks(saved.read_text()) == []
    assert "Done looking." in saved.read_text()
    assert leaks(json.dumps([r["body"] for r in fake_api.requests])) == []
    records = list((in_tmp / ".nbagent").rglob("*")) if (in_tmp / ".nbagent").exists() else []
    assert records, "the turn was saved beside the notebook"
    for path in records:
        if path.is_file():
            assert leaks(path.read_text(errors="replace")) == [], path
