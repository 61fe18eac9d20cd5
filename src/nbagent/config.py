"""Settings from the places users already keep them.

Precedence, highest first:

1. explicit arguments (`Agent(model=...)`, `%%agent --model ...`);
2. IPython configuration (`%config NBAgent.model = ...`, ipython_config.py), in Jupyter;
3. environment variables: ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, ANTHROPIC_MODEL_NAME,
   MAX_TURNS, SYSTEM_PROMPT_FILE;
4. a `.env` file in the working directory (read, never written, and never copied into
   `os.environ`, so tool subprocesses do not inherit the key);
5. built-in defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

DEFAULT_MODEL = "claude-opus-4-8"
DEFAULT_MAX_TURNS = 100

DEFAULT_SYSTEM_PROMPT = """\
You are nbagent, an AI assistant working inside a data analyst's environment \
(a Jupyter kernel, a terminal or a script). You have tools to read and write files in \
the workspace, run shell commands and Python code, and notify the user. Prefer doing \
over describing: inspect data before drawing conclusions, run code to check results, \
and keep changes small and reversible. Never delete or overwrite a user's work without \
being asked. When you finish, answer concisely in Markdown."""

ENV_NAMES = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL_NAME",
    "MAX_TURNS",
    "SYSTEM_PROMPT_FILE",
)


@dataclass(frozen=True)
class Settings:
    api_key: str | None
    auth_token: str | None
    base_url: str | None
    model: str
    max_turns: int
    system_prompt_file: Path | None
    env_file: Path | None


def read_env(cwd: Path | None = None) -> dict[str, str]:
    """The configuration variables: environment first, then `.env` in `cwd`."""
    cwd = cwd or Path.cwd()
    values: dict[str, str] = {}
    env_file = cwd / ".env"
    if env_file.is_file():
        from dotenv import dotenv_values

        for key, value in dotenv_values(env_file).items():
            if key in ENV_NAMES and value:
                values[key] = value
    for key in ENV_NAMES:
        if os.environ.get(key):
            values[key] = os.environ[key]
    return values


def load_settings(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    cwd = cwd or Path.cwd()
    values = dict(env) if env is not None else read_env(cwd)
    max_turns_text = values.get("MAX_TURNS")
    if max_turns_text is None:
        max_turns = DEFAULT_MAX_TURNS
    else:
        max_turns = parse_max_turns(max_turns_text, "MAX_TURNS")
    prompt_file = values.get("SYSTEM_PROMPT_FILE")
    env_file = cwd / ".env"
    return Settings(
        api_key=values.get("ANTHROPIC_API_KEY"),
        auth_token=values.get("ANTHROPIC_AUTH_TOKEN"),
        base_url=values.get("ANTHROPIC_BASE_URL"),
        model=values.get("ANTHROPIC_MODEL_NAME") or DEFAULT_MODEL,
        max_turns=max_turns,
        system_prompt_file=(cwd / prompt_file) if prompt_file else None,
        env_file=env_file if env_file.is_file() else None,
    )


def parse_max_turns(text: str | int, source: str = "max_turns") -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{source} must be a whole number, got {text!r}") from None
    if value < 1:
        raise ConfigError(f"{source} must be at least 1, got {value}")
    return value


def missing_key_message(cwd: Path | None = None) -> str:
    where = (cwd or Path.cwd()) / ".env"
    return (
        "ANTHROPIC_API_KEY is not set: export ANTHROPIC_API_KEY=sk-ant-... "
        f"or add that line to {where}"
    )


def resolve_system_prompt(
    system: str | list[dict] | None, settings: Settings, cwd: Path
) -> str | list[dict]:
    """The system prompt: the argument, else SYSTEM_PROMPT_FILE, else ./system_prompt.txt.

    The file is only ever read: a user's prompt file is theirs.
    """
    if system is not None:
        return system
    if settings.system_prompt_file is not None:
        path = settings.system_prompt_file
        if not path.is_file():
            raise ConfigError(f"SYSTEM_PROMPT_FILE points to {path}, which does not exist")
        return path.read_text(encoding="utf-8").strip()
    default_file = cwd / "system_prompt.txt"
    if default_file.is_file():
        return default_file.read_text(encoding="utf-8").strip()
    return DEFAULT_SYSTEM_PROMPT
