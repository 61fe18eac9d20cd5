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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .options import OPTIONS

DEFAULT_SYSTEM_PROMPT = """\
You are nbagent, an AI assistant working inside a data analyst's environment \
(a Jupyter kernel, a terminal or a script). You have tools to read and write files in \
the workspace, run shell commands and Python code, and notify the user. Prefer doing \
over describing: inspect data before drawing conclusions, run code to check results, \
and keep changes small and reversible. Never delete or overwrite a user's work without \
being asked. When you finish, answer concisely in Markdown."""

# Connection settings: read from the environment and `.env`, never from IPython config
# (a key does not belong in ipython_config.py).
CONNECTION_ENV = ("ANTHROPIC_AUTH_TOKEN", "SYSTEM_PROMPT_FILE")
ENV_NAMES = CONNECTION_ENV + tuple(o.env for o in OPTIONS if o.env)


@dataclass(frozen=True)
class Settings:
    """Every option's value for one turn, resolved from all sources, plus the connection."""

    model: str
    max_turns: int
    permission_mode: str
    thinking: str
    effort: str | None
    max_tokens: int
    workspace: str
    system_prompt: str | None
    max_retries: int
    timeout: float
    max_tool_output_chars: int
    prompt_caching: bool
    shell_timeout: float
    sandbox: str
    sandbox_network: bool
    secrets: list[str] | None
    secret_files: list[str] | None
    api_key: str | None
    base_url: str | None
    tool_protocol: str
    turn_budget_usd: float | None
    session_budget_usd: float | None
    compaction: str
    compact_at: float
    context_editing: bool
    mcp_servers: dict[str, Any] | None
    mcp_startup_timeout: float
    mcp_call_timeout: float
    undo_snapshot_mb: float
    raise_on_error: str
    restore: str
    notebook: str | None
    replay: str
    replay_mismatch: str
    record_max_mb: float
    headless_approval: str
    show_thinking: bool
    max_repr_chars: int
    update_interval: float
    auth_token: str | None = None
    system_prompt_file: Path | None = None
    env_file: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def get(self, name: str) -> Any:
        return getattr(self, name)


def read_env(cwd: Path | None = None) -> dict[str, str]:
    """The configuration variables: environment first, then `.env` in `cwd`."""
    cwd = cwd or Path.cwd()
    values: dict[str, str] = {}
    for key, value in read_dotenv(cwd).items():
        if key in ENV_NAMES and value:
            values[key] = value
    for key in ENV_NAMES:
        if os.environ.get(key):
            values[key] = os.environ[key]
    return values


def read_dotenv(cwd: Path) -> dict[str, str]:
    """All values of `cwd/.env` (empty when there is none); never put into os.environ."""
    env_file = cwd / ".env"
    if not env_file.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(env_file).items() if v is not None}


def resolve(
    explicit: Mapping[str, Any] | None = None,
    ipython: Mapping[str, Any] | None = None,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every option: explicit, then IPython config, environment, `.env`, default.

    `env` replaces the environment and `.env` together (tests, embedding).
    Called at the start of each turn, so a change holds from the next turn on.
    """
    cwd = cwd or Path.cwd()
    values = dict(env) if env is not None else read_env(cwd)
    resolved: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for opt in OPTIONS:
        for source, mapping, key in (
            ("argument", explicit or {}, opt.name),
            ("IPython config", ipython or {}, opt.name),
            ("environment", values, opt.env),
        ):
            if key is None:
                continue
            value = mapping.get(key)
            if value is None or value == "":
                continue
            label = opt.env if source == "environment" and opt.env else ""
            resolved[opt.name] = opt.parse(value, label or source)
            sources[opt.name] = source
            break
        else:
            resolved[opt.name] = opt.default
            sources[opt.name] = "default"
    if resolved["thinking"] == "adaptive":  # the documented alias
        resolved["thinking"] = "summarized"
    prompt_file = values.get("SYSTEM_PROMPT_FILE")
    env_file = cwd / ".env"
    return Settings(
        **resolved,
        auth_token=values.get("ANTHROPIC_AUTH_TOKEN"),
        system_prompt_file=(cwd / prompt_file) if prompt_file else None,
        env_file=env_file if env_file.is_file() else None,
        sources=sources,
    )


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
