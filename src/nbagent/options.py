"""Every nbagent option, defined once.

`Agent(...)` keyword arguments, the `NBAgent` IPython traits, the `%%agent` flags and
the `nbagent` CLI flags are all derived from `OPTIONS`, so they cannot drift apart.
Values are resolved at the start of each turn (`nbagent.config.resolve`), with the
documented precedence: explicit argument, IPython config, environment, `.env`, default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

# Where an option can be set besides `Agent(...)`, `NBAgent` and the environment.
TURN = "turn"  # a `%%agent` flag, for one cell
CLI = "cli"  # an `nbagent` flag
KERNEL = "kernel"  # only meaningful in a kernel (an NBAgent trait, not an Agent argument)


@dataclass(frozen=True)
class Option:
    name: str
    kind: type  # str, int, float, bool or list (of str)
    default: Any
    help: str
    env: str | None = None
    choices: tuple[str, ...] | None = None
    where: frozenset[str] = frozenset()
    flag: str | None = None  # CLI / magic flag when not --<name with dashes>
    minimum: float | None = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def parse(self, value: Any, source: str) -> Any:
        """`value` (a string from the environment, or a typed value) as this option's type."""
        if value is None:
            return None
        label = f"{source} {self.name}" if source else self.name
        try:
            if self.kind is bool:
                if isinstance(value, str):
                    lowered = value.strip().lower()
                    if lowered not in _BOOLS:
                        raise ValueError
                    value = _BOOLS[lowered]
                parsed: Any = bool(value)
            elif self.kind is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                parsed = int(value)
            elif self.kind is float:
                parsed = float(value)
            elif self.kind is dict:
                if isinstance(value, str):
                    import json

                    value = json.loads(value)
                if not isinstance(value, dict):
                    raise ValueError
                parsed = dict(value)
            elif self.kind is list:
                if isinstance(value, str):
                    parsed = [v.strip() for v in value.split(",") if v.strip()]
                else:
                    parsed = [str(v) for v in value]
            else:
                parsed = str(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{label} must be {_KIND_NAMES[self.kind]}, got {value!r}") from None
        if self.choices is not None:
            parsed = parsed.lower() if isinstance(parsed, str) else parsed
            if parsed not in self.choices:
                raise ConfigError(
                    f"{label} must be one of {', '.join(self.choices)}; got {value!r}"
                )
        if self.minimum is not None and parsed < self.minimum:
            raise ConfigError(f"{label} must be at least {self.minimum:g}, got {parsed}")
        return parsed


_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False}
_BOOLS.update({"no": False, "off": False})
_KIND_NAMES = {
    dict: "a JSON object",
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    list: "a list of strings",
    str: "a string",
}

OPTIONS: tuple[Option, ...] = (
    Option(
        "model",
        str,
        "claude-opus-4-8",
        "Model name.",
        env="ANTHROPIC_MODEL_NAME",
        where=frozenset({TURN, CLI}),
    ),
    Option(
        "max_turns",
        int,
        100,
        "Rounds of tool use per turn; after them the model must answer.",
        env="MAX_TURNS",
        where=frozenset({TURN, CLI}),
        minimum=1,
    ),
    Option(
        "permission_mode",
        str,
        "auto",
        "auto: run tools freely; ask: confirm writes and execution; read-only: refuse all but reads.",
        choices=("auto", "ask", "read-only"),
        where=frozenset({TURN, CLI}),
        flag="--mode",
    ),
    Option(
        "thinking",
        str,
        "summarized",
        "summarized: show the model's thinking where it supports adaptive thinking "
        "('adaptive' is an alias); omitted: think without showing it; off: no thinking.",
        choices=("summarized", "adaptive", "omitted", "off"),
        where=frozenset({TURN, CLI}),
    ),
    Option(
        "effort",
        str,
        None,
        "Effort level sent as output_config.effort, where the model takes it.",
        choices=("low", "medium", "high", "xhigh", "max"),
        where=frozenset({TURN, CLI}),
    ),
    Option(
        "max_tokens",
        int,
        32_000,
        "Output token limit per request.",
        where=frozenset({TURN, CLI}),
        minimum=1,
    ),
    Option("workspace", str, ".", "Root directory of the file and shell tools."),
    Option(
        "system_prompt",
        str,
        None,
        "System prompt (default: the file SYSTEM_PROMPT_FILE names, ./system_prompt.txt, or built-in).",
    ),
    Option("max_retries", int, 2, "SDK retries on 429, 5xx and connection errors.", minimum=0),
    Option("timeout", float, 600.0, "Seconds before a request times out.", minimum=0),
    Option(
        "max_tool_output_chars",
        int,
        30_000,
        "Tool outputs longer than this are clipped, with a notice.",
        minimum=100,
    ),
    Option(
        "prompt_caching", bool, True, "Mark cache breakpoints on the system prompt and history."
    ),
    Option(
        "shell_timeout",
        float,
        30.0,
        "Timeout in seconds for shell and Python-subprocess tools.",
        where=frozenset({CLI}),
        minimum=0,
    ),
    Option(
        "sandbox",
        str,
        "auto",
        "Run shell and Python subprocesses in a bubblewrap sandbox: auto (where bwrap "
        "works), on (required) or off.",
        env="NBAGENT_SANDBOX",
        choices=("auto", "on", "off"),
        where=frozenset({CLI}),
    ),
    Option(
        "sandbox_network",
        bool,
        True,
        "Let sandboxed subprocesses reach the network (false cuts it; needs the sandbox).",
        env="NBAGENT_SANDBOX_NETWORK",
    ),
    Option(
        "secrets",
        list,
        None,
        "More secret values to redact from everything the model, the logs and saved "
        "files see (besides secret-named variables in the environment and .env).",
        env="NBAGENT_SECRETS",
    ),
    Option(
        "secret_files",
        list,
        None,
        "File-name patterns the file tools never read, write or delete "
        "(default: .env, .env.*, *.pem, *.key, id_rsa*, .netrc, credentials*, ...).",
        env="NBAGENT_SECRET_FILES",
    ),
    Option(
        "api_key",
        str,
        None,
        "API key of the model's provider (Anthropic: ANTHROPIC_API_KEY).",
        env="ANTHROPIC_API_KEY",
    ),
    Option(
        "base_url",
        str,
        None,
        "Endpoint of the model's provider: any Anthropic-compatible server for Claude.",
        env="ANTHROPIC_BASE_URL",
    ),
    Option(
        "tool_protocol",
        str,
        "auto",
        "How tools reach the model: native tool calling, or xml (described in the system "
        "prompt, calls parsed from the text) for models without it; auto picks per model.",
        choices=("auto", "native", "xml"),
        where=frozenset({CLI}),
    ),
    Option(
        "turn_budget_usd",
        float,
        None,
        "Stop a turn before a request would take its cost past this many US dollars.",
        where=frozenset({TURN, CLI}),
        flag="--budget",
        minimum=0,
    ),
    Option(
        "session_budget_usd",
        float,
        None,
        "Stop before a request would take the session's cost past this many US dollars.",
        where=frozenset({CLI}),
        flag="--session-budget",
        minimum=0,
    ),
    Option(
        "compaction",
        str,
        "auto",
        "Context management when the conversation nears the model's window: auto (server "
        "where the model supports it, else client), server, client or off.",
        choices=("auto", "server", "client", "off"),
        env="NBAGENT_COMPACTION",
    ),
    Option(
        "compact_at",
        float,
        0.8,
        "Compact when the next request is estimated to fill this share of the window.",
        minimum=0.1,
    ),
    Option(
        "context_editing",
        bool,
        False,
        "Clear old tool results server-side (rewrites the cached prefix, so off by default).",
    ),
    Option(
        "mcp_servers",
        dict,
        None,
        "MCP servers in the mcpServers shape ({name: {command, args, env} or {url, "
        "headers}}); .mcp.json in the working directory adds more.",
        env="NBAGENT_MCP_SERVERS",
    ),
    Option(
        "mcp_startup_timeout",
        float,
        30.0,
        "Seconds the first turn waits for MCP servers to start.",
        minimum=0,
    ),
    Option(
        "mcp_call_timeout",
        float,
        120.0,
        "Seconds an MCP tool call may take before it returns an error.",
        minimum=0,
    ),
    Option(
        "undo_snapshot_mb",
        float,
        200.0,
        "Largest copy of the user's variables kept per turn for %agent undo (MB).",
        where=frozenset({KERNEL}),
        minimum=0,
    ),
    Option(
        "raise_on_error",
        str,
        "auto",
        "Raise when a %%agent cell ends in an error: auto (in headless runs: nbconvert, "
        "papermill, nbclient), always, or never.",
        choices=("auto", "always", "never"),
        where=frozenset({KERNEL}),
    ),
    Option(
        "restore",
        str,
        "auto",
        "After a kernel restart, continue the conversation saved in .nbagent/: auto, ask, or off.",
        env="NBAGENT_RESTORE",
        choices=("auto", "ask", "off"),
        where=frozenset({KERNEL}),
    ),
    Option(
        "notebook",
        str,
        None,
        "The notebook this kernel runs (for .nbagent/ records when the frontend cannot say: "
        "papermill, nbclient).",
        env="NBAGENT_NOTEBOOK",
        where=frozenset({KERNEL}),
    ),
    Option(
        "replay",
        str,
        "auto",
        "Replay recorded model responses: auto (in headless runs), off, or force.",
        env="NBAGENT_REPLAY",
        choices=("auto", "off", "force"),
        where=frozenset({KERNEL}),
    ),
    Option(
        "replay_mismatch",
        str,
        "stop",
        "When a replayed tool result differs from its recording: stop with an error, or "
        "continue live from there.",
        choices=("stop", "live"),
        where=frozenset({KERNEL}),
    ),
    Option(
        "record_max_mb",
        float,
        200.0,
        "Size cap of the .nbagent/ folder beside a notebook (oldest records go first).",
        where=frozenset({KERNEL}),
        minimum=1,
    ),
    Option(
        "headless_approval",
        str,
        "deny",
        "In 'ask' mode without stdin (nbclient, papermill): what to answer for tools needing approval.",
        choices=("deny", "allow"),
        where=frozenset({KERNEL}),
    ),
    Option(
        "show_thinking",
        bool,
        True,
        "Show the model's thinking (dimmed) in cell output and the panel.",
        where=frozenset({KERNEL}),
    ),
    Option(
        "max_repr_chars",
        int,
        2_000,
        "Clip {variable} interpolations in prompts to this many characters.",
        where=frozenset({KERNEL}),
        minimum=10,
    ),
    Option(
        "update_interval",
        float,
        0.1,
        "Seconds between updates of the streaming cell output.",
        where=frozenset({KERNEL}),
        minimum=0,
    ),
)

BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}

# Options `Agent(...)` takes (kernel-only options are for the notebook surfaces).
AGENT_OPTIONS = tuple(o for o in OPTIONS if KERNEL not in o.where)
TURN_OPTIONS = tuple(o for o in OPTIONS if TURN in o.where)
CLI_OPTIONS = tuple(o for o in OPTIONS if CLI in o.where)

# Changing one of these rebuilds the tools or the system prompt: the prompt cache restarts.
REBUILDS = (
    "workspace",
    "system_prompt",
    "shell_timeout",
    "max_tool_output_chars",
    "sandbox",
    "sandbox_network",
    "secret_files",
)


def option(name: str) -> Option:
    try:
        return BY_NAME[name]
    except KeyError:
        raise TypeError(f"unknown nbagent option {name!r}") from None


def defaults() -> dict[str, Any]:
    return {o.name: o.default for o in OPTIONS}
