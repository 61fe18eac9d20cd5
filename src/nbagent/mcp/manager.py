"""The MCP servers of one session: which may start, their tools, and their state.

`McpManager.tools_for_turn(settings, may_start=..., emit=...)` is called when a turn
begins. The first time a server is configured it decides whether the server may start
under the permission mode (starting one is an execute action), starts the allowed ones
together, waits up to `mcp_startup_timeout`, and returns their tools, sorted; later
turns get the same tools without waiting (servers stay up across turns) unless the
configuration changed. Nothing starts before the first turn, and nothing at all when
no server is configured.

Who may start what:
- `read-only`: no server starts (one that already runs keeps running; the policy still
  refuses its tools that are not read tools);
- `auto`: servers from the `mcp_servers` setting start; a `.mcp.json` server (it may
  have come with a cloned folder) starts only once the user allowed its exact
  configuration;
- `ask`: every server starts only once the user allowed its exact configuration.
An answer is asked once per configuration (`may_start(summary) -> bool`) and remembered
for the session; with no way to ask, the server is not started and a notice says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..events import Notice, ToolOutput
from ..redact import redact
from .config import McpConfigError, ServerConfig, expand, load_servers
from .tools import McpTool, make_tools, result_to_output

if TYPE_CHECKING:
    from ..config import Settings
    from .runtime import McpRuntime, ServerHandle

MayStart = Callable[[str], bool]
Emit = Callable[[Notice], None]


@dataclass(frozen=True)
class ServerStatus:
    """One configured server as `%agent mcp` and the sidebar show it."""

    name: str
    source: str
    transport: str
    state: str  # not started, starting, running, failed, crashed, stopped
    detail: str
    tools: tuple[str, ...]
    categories: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "transport": self.transport,
            "state": self.state,
            "detail": self.detail,
            "tools": [
                {"name": n, "category": c} for n, c in zip(self.tools, self.categories, strict=True)
            ],
        }


class McpManager:
    def __init__(self, *, cwd: Path | None = None) -> None:
        self._cwd = cwd
        self._runtime: McpRuntime | None = None
        self._lock = threading.RLock()
        self._configured: list[ServerConfig] = []
        self._started: dict[str, str] = {}  # name -> fingerprint of the config it runs
        self._not_started: dict[str, str] = {}  # name -> why
        self._answers: dict[str, bool] = {}  # fingerprint -> the user's answer
        self._said: set[str] = set()  # notices already given (one line, once)
        self._tools: list[McpTool] = []
        self._secrets: list[str] = []
        self.call_timeout = 120.0

    # -- the turn's tools --------------------------------------------------------

    def tools_for_turn(
        self, settings: Settings, *, may_start: MayStart | None, emit: Emit
    ) -> list[McpTool]:
        """The MCP tools for a turn that begins now (starting servers where allowed)."""
        with self._lock:
            self.call_timeout = settings.mcp_call_timeout
            loaded = load_servers(settings.mcp_servers, self._cwd or Path.cwd())
            for problem in loaded.problems:
                self._say(emit, problem)
            self._configured = loaded.servers
            configured = {c.name: c.fingerprint for c in loaded.servers}
            changed = [n for n, fp in self._started.items() if configured.get(n) != fp]
            if changed:
                self._stop(changed)
            wanted = []
            self._not_started = {}
            for config in loaded.servers:
                if config.name in self._started:
                    continue
                why_not = self._refusal(config, settings.permission_mode, may_start)
                if why_not is None:
                    wanted.append(config)
                else:
                    self._not_started[config.name] = why_not
                    self._say(emit, why_not, key=f"{config.fingerprint}:{why_not}")
            if wanted:
                self._start(wanted, settings.mcp_startup_timeout, emit)
            if changed or wanted:
                self._tools = self._build_tools(emit)
            return list(self._tools)

    def allow(self, name: str) -> bool:
        """Allow the configured server `name` to start from the next turn (an answer
        given outside a turn, e.g. `%agent mcp allow NAME`); False if there is none."""
        with self._lock:
            for config in self._configured:
                if config.name == name:
                    self._answers[config.fingerprint] = True
                    return True
            return False

    def restart(self, name: str) -> None:
        """Stop server `name` if it runs; the next turn starts it again (a server that
        failed or crashed is otherwise left alone until its configuration changes)."""
        with self._lock:
            if name in self._started:
                self._stop([name])
                self._tools = [t for t in self._tools if t.server != name]

    # -- state ---------------------------------------------------------------------

    def status(self) -> list[ServerStatus]:
        """Every configured server (as of the last turn), its state and its tools."""
        with self._lock:
            runtime = self._runtime
            out = []
            for config in self._configured:
                handle = runtime.servers.get(config.name) if runtime is not None else None
                tools = [t for t in self._tools if t.server == config.name]
                if handle is None:
                    state, detail = "not started", self._not_started.get(config.name, "")
                else:
                    state, detail = handle.state, handle.detail
                out.append(
                    ServerStatus(
                        name=config.name,
                        source=config.source,
                        transport=config.transport,
                        state=state,
                        detail=redact(detail),
                        tools=tuple(t.name for t in tools),
                        categories=tuple(t.category for t in tools),
                    )
                )
            return out

    def status_text(self) -> str:
        """`%agent mcp`: servers, their state and their tools."""
        servers = self.status()
        if not servers:
            return (
                "No MCP servers are configured (set NBAgent.mcp_servers, or add a .mcp.json "
                "in the working directory)."
            )
        lines = []
        for s in servers:
            origin = "setting" if s.source == "setting" else s.source
            line = f"{s.name} ({s.transport}, from {origin}): {s.state}"
            if s.detail:
                line += f" - {s.detail}"
            lines.append(line)
            for name, category in zip(s.tools, s.categories, strict=True):
                lines.append(f"    {name}  [{category}]")
        return "\n".join(lines)

    def secret_values(self) -> list[str]:
        """Secret values from the started servers' env and headers, to redact."""
        with self._lock:
            return list(self._secrets)

    @property
    def tools(self) -> list[McpTool]:
        return list(self._tools)

    def close(self) -> None:
        """Stop every server (session close, `%unload_ext`, exit)."""
        with self._lock:
            runtime, self._runtime = self._runtime, None
            self._started.clear()
            self._tools = []
        if runtime is not None:
            runtime.close()

    # -- internals -----------------------------------------------------------------

    def _refusal(self, config: ServerConfig, mode: str, may_start: MayStart | None) -> str | None:
        """None if `config` may start now, else the one-line reason it does not."""
        if mode == "read-only":
            return f"MCP server '{config.name}' was not started: the session is read-only."
        if mode == "auto" and not config.from_project_file:
            return None
        answer = self._answers.get(config.fingerprint)
        if answer is None and may_start is not None:
            try:
                answer = bool(may_start(config.summary()))
            except Exception:  # a broken prompt is a "no", never a start
                answer = False
            self._answers[config.fingerprint] = answer
        if answer:
            return None
        if answer is None:
            return (
                f"MCP server '{config.name}' was not started: it needs your permission and "
                f"there is no way to ask here. Allow it with `%agent mcp allow {config.name}`."
            )
        return f"MCP server '{config.name}' was not started: you did not allow it."

    def _start(self, configs: list[ServerConfig], timeout: float, emit: Emit) -> None:
        expanded = []
        for config in configs:
            try:
                expanded.append(expand(config))
            except McpConfigError as exc:
                self._not_started[config.name] = str(exc)
                self._say(emit, str(exc))
        if not expanded:
            return
        if self._runtime is None:
            from .runtime import McpRuntime

            self._runtime = McpRuntime()
        for server in expanded:
            self._secrets.extend(server.secret_values())
        handles = self._runtime.start(expanded, timeout)
        for handle in handles:
            self._started[handle.name] = handle.server.config.fingerprint
            if handle.state != "running":
                self._say(emit, _failure_line(handle))

    def _stop(self, names: list[str]) -> None:
        for name in names:
            self._started.pop(name, None)
        if self._runtime is not None:
            self._runtime.stop(names)

    def _build_tools(self, emit: Emit) -> list[McpTool]:
        runtime = self._runtime
        if runtime is None:
            return []
        tools: list[McpTool] = []
        by_name = {c.name: c for c in self._configured}
        for name in sorted(self._started):
            handle = runtime.servers.get(name)
            config = by_name.get(name)
            if handle is None or config is None or not handle.listed:
                continue
            made, problems = make_tools(
                name, handle.listed, override=config.category_for, call=self._caller(name)
            )
            for problem in problems:
                self._say(emit, problem)
            tools.extend(made)
        return sorted(tools, key=lambda t: t.name)

    def _caller(self, server: str) -> Callable[[str, dict[str, Any]], ToolOutput]:
        def call(tool: str, arguments: dict[str, Any]) -> ToolOutput:
            from .runtime import McpCallError

            runtime = self._runtime
            if runtime is None:
                return ToolOutput(f"MCP server '{server}' was stopped.", is_error=True)
            try:
                result = runtime.call(server, tool, arguments, self.call_timeout)
            except McpCallError as exc:
                return ToolOutput(str(exc), is_error=True)
            return result_to_output(result)

        return call

    def _say(self, emit: Emit, text: str, *, key: str | None = None) -> None:
        key = key or text
        if key in self._said:
            return
        self._said.add(key)
        emit(Notice(redact(text), "warning"))


def _failure_line(handle: ServerHandle) -> str:
    verb = "did not start" if handle.state == "failed" else f"is {handle.state}"
    line = f"MCP server '{handle.name}' {verb}"
    if handle.detail:
        line += f": {handle.detail}"
    return line + "; its tools are unavailable this session."
