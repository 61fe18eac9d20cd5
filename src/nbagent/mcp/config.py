"""Where MCP servers come from, in the `mcpServers` shape Claude Desktop and Claude Code use.

Two sources: the `mcp_servers` setting (`NBAgent.mcp_servers`, `Agent(mcp_servers=...)`,
`NBAGENT_MCP_SERVERS`) and a `.mcp.json` in the working directory. Each entry is

- stdio: `{"command": "uvx", "args": [...], "env": {...}, "cwd": "..."}`;
- streamable HTTP: `{"type": "http", "url": "https://...", "headers": {...}}` (a `url`
  alone also means HTTP);

plus two nbagent keys: `"category"` (a permission category for all the server's tools,
or `{"tool name": category, "*": category}`), overriding the tools' annotations, and
`"disabled": true`. As in Claude Code, `${VAR}` and `${VAR:-default}` in `command`,
`args`, `env`, `cwd`, `url` and `headers` are taken from the environment when the
server starts. A name in both sources is the setting's: a cloned `.mcp.json` cannot
replace a server the user configured.

Only the standard library here: nothing of the `mcp` SDK is imported until a server starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..redact import is_secret_name
from ..tools.base import CATEGORIES, Category

PROJECT_FILE = ".mcp.json"
SETTING = "setting"

Transport = Literal["stdio", "http"]

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_HTTP_TYPES = ("http", "streamable-http", "streamable_http", "streamableHttp")


class McpConfigError(ValueError):
    """A server entry that cannot be used; the message names the server and the problem."""


@dataclass(frozen=True)
class ServerConfig:
    """One configured server, as written (`${VAR}` references not yet expanded)."""

    name: str
    source: str  # SETTING, or the path of the .mcp.json that declared it
    transport: Transport
    command: str = ""
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    url: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    category: Category | tuple[tuple[str, Category], ...] | None = None

    @property
    def from_project_file(self) -> bool:
        """Declared by a `.mcp.json` (which may have come with a cloned folder)."""
        return self.source != SETTING

    @property
    def fingerprint(self) -> str:
        """Identifies this exact configuration: an allowance holds for it and no other."""
        data = {
            "name": self.name,
            "source": self.source,
            "transport": self.transport,
            "command": self.command,
            "args": self.args,
            "env": self.env,
            "cwd": self.cwd,
            "url": self.url,
            "headers": self.headers,
            "category": self.category,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def category_for(self, tool_name: str) -> Category | None:
        """The configured category of one tool, if the config overrides its annotations."""
        if self.category is None or isinstance(self.category, str):
            return self.category
        mapping = dict(self.category)
        return mapping.get(tool_name, mapping.get("*"))

    def summary(self) -> str:
        """One line saying what starting the server does, for the user to allow or not.

        References (`${VAR}`) are shown as written, so the user sees which of their
        variables the server gets; literal environment and header values are not shown.
        """
        origin = "the mcp_servers setting" if self.source == SETTING else self.source
        if self.transport == "stdio":
            what = f"run `{shlex.join([self.command, *self.args])}`"
            if self.cwd:
                what += f" in {self.cwd}"
            if self.env:
                what += " with " + _named_values("environment", self.env)
        else:
            what = f"connect to {self.url}"
            if self.headers:
                what += " with " + _named_values("headers", self.headers)
        if self.category is not None:
            what += f" (tool categories set to {_category_text(self.category)})"
        return f"MCP server '{self.name}' from {origin}: {what}"


@dataclass(frozen=True)
class ExpandedServer:
    """A server's config with `${VAR}` references replaced, ready to start."""

    config: ServerConfig
    command: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def secret_values(self) -> list[str]:
        """Values to redact: environment values and headers whose names look secret,
        and every header value of Authorization-like headers."""
        found = [v for k, v in self.env.items() if is_secret_name(k)]
        found += [
            v
            for k, v in self.headers.items()
            if is_secret_name(k) or k.lower() in ("authorization", "proxy-authorization", "cookie")
        ]
        # "Bearer <token>": the token alone is what a program would print.
        found += [v.split(None, 1)[1] for v in found if " " in v.strip()]
        return [v for v in found if v]


@dataclass
class LoadedConfig:
    servers: list[ServerConfig]
    problems: list[str]  # one line each: an entry that was skipped, and why


def load_servers(setting: Mapping[str, Any] | None, cwd: Path) -> LoadedConfig:
    """The servers of the setting and of `cwd/.mcp.json`, sorted by name."""
    problems: list[str] = []
    servers: dict[str, ServerConfig] = {}
    project = cwd / PROJECT_FILE
    if project.is_file():
        try:
            data = json.loads(project.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"{project} was not read: {exc}")
        else:
            for config in _parse_block(data, str(project), problems):
                servers[config.name] = config
    if setting:
        for config in _parse_block(setting, SETTING, problems):
            servers[config.name] = config  # the user's own setting wins over a project file
    return LoadedConfig(sorted(servers.values(), key=lambda s: s.name), problems)


def expand(config: ServerConfig, environ: Mapping[str, str] | None = None) -> ExpandedServer:
    """`config` with `${VAR}` and `${VAR:-default}` taken from `environ` (os.environ)."""
    env_source = os.environ if environ is None else environ

    def sub(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = env_source.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    raise McpConfigError(
                        f"MCP server '{config.name}': ${{{name}}} is used in its configuration "
                        "but the variable is not set"
                    )
                return default
            return value

        return _REFERENCE.sub(one, text)

    return ExpandedServer(
        config=config,
        command=sub(config.command),
        args=tuple(sub(a) for a in config.args),
        env={k: sub(v) for k, v in config.env},
        cwd=sub(config.cwd) if config.cwd else None,
        url=sub(config.url),
        headers={k: sub(v) for k, v in config.headers},
    )


# -- parsing -------------------------------------------------------------------


def _parse_block(data: Any, source: str, problems: list[str]) -> list[ServerConfig]:
    """Entries of `{"mcpServers": {...}}`, or of a bare `{name: entry}` mapping."""
    where = "the mcp_servers setting" if source == SETTING else source
    if not isinstance(data, Mapping):
        problems.append(f"{where} must be a JSON object of servers")
        return []
    block = data["mcpServers"] if "mcpServers" in data else data
    if not isinstance(block, Mapping):
        problems.append(f"{where}: mcpServers must be a JSON object of servers")
        return []
    out = []
    for name, entry in block.items():
        try:
            config = _parse_entry(str(name), entry, source)
        except McpConfigError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if config is not None:
            out.append(config)
    return out


def _parse_entry(name: str, entry: Any, source: str) -> ServerConfig | None:
    if not name:
        raise McpConfigError("a server has an empty name")
    if not isinstance(entry, Mapping):
        raise McpConfigError(f"server '{name}' must be a JSON object")
    if entry.get("disabled") is True:
        return None
    kind = str(entry.get("type") or entry.get("transport") or "")
    category = _parse_category(name, entry.get("category"))
    if kind in _HTTP_TYPES or (not kind and "url" in entry):
        url = entry.get("url")
        if not isinstance(url, str) or not url:
            raise McpConfigError(f"server '{name}' needs a url")
        return ServerConfig(
            name=name,
            source=source,
            transport="http",
            url=url,
            headers=_string_pairs(name, "headers", entry.get("headers")),
            category=category,
        )
    if kind == "sse":
        raise McpConfigError(
            f"server '{name}' uses the SSE transport, which nbagent does not support; "
            "use streamable HTTP (type http)"
        )
    if kind not in ("", "stdio"):
        raise McpConfigError(f"server '{name}' has an unknown type {kind!r}")
    command = entry.get("command")
    if not isinstance(command, str) or not command:
        raise McpConfigError(f"server '{name}' needs a command (stdio) or a url (http)")
    args = entry.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str | int | float) for a in args):
        raise McpConfigError(f"server '{name}': args must be a list of strings")
    cwd = entry.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise McpConfigError(f"server '{name}': cwd must be a string")
    if cwd is None and source != SETTING:
        cwd = str(Path(source).parent)  # a project's servers run in the project
    return ServerConfig(
        name=name,
        source=source,
        transport="stdio",
        command=command,
        args=tuple(str(a) for a in args),
        env=_string_pairs(name, "env", entry.get("env")),
        cwd=cwd,
        category=category,
    )


def _string_pairs(name: str, key: str, value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise McpConfigError(f"server '{name}': {key} must be a JSON object of strings")
    return tuple(sorted((str(k), str(v)) for k, v in value.items()))


def _parse_category(name: str, value: Any) -> Category | tuple[tuple[str, Category], ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _check_category(name, value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _check_category(name, v)) for k, v in value.items()))
    raise McpConfigError(
        f"server '{name}': category must be one of {', '.join(CATEGORIES)} or a "
        "{tool: category} object"
    )


def _check_category(name: str, value: Any) -> Category:
    if value not in CATEGORIES:
        raise McpConfigError(
            f"server '{name}': category must be one of {', '.join(CATEGORIES)}, got {value!r}"
        )
    return value  # type: ignore[no-any-return]


def _named_values(label: str, pairs: tuple[tuple[str, str], ...]) -> str:
    shown = [f"{k}={v}" if _REFERENCE.fullmatch(v) else k for k, v in pairs]
    return f"{label} {', '.join(shown)}"


def _category_text(category: Category | tuple[tuple[str, Category], ...]) -> str:
    if isinstance(category, str):
        return category
    return ", ".join(f"{k}: {v}" for k, v in category)
