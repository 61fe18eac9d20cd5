"""What the warm-up does: the parts of a first `%%agent` turn, in the order a turn needs
them (imports, the agent and its tool schemas, the SDK's stream schemas and parsing),
then the rest of nbagent. `stepper.Warmup` runs them a step at a time."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

# nbagent's modules a first %%agent turn imports, in steps before the agent is built
# (in one piece, which imports whatever is missing here); the rest of the package (but
# for SKIP) comes last. tests/test_first_turn.py checks that a first turn after the
# warm-up imports nothing.
TURN_MODULES = (
    "nbagent.agent",
    "nbagent.pump",
    "nbagent.request",
    "nbagent.providers.registry",
    "nbagent.providers.anthropic_api",
    "nbagent.context.client_compaction",
    "nbagent.context.server_compaction",
    "nbagent.tools.builtin",
    "nbagent.jupyter.live",
    "nbagent.jupyter.session",
    "nbagent.jupyter.conversation",
    "nbagent.jupyter.interpolate",
    "nbagent.jupyter.cell_output",
    "nbagent.transport.broadcast",
    "docstring_parser",
)
# What a %%agent turn never needs, and imports heavy libraries (ipywidgets, rich).
SKIP = ("nbagent.cli", "nbagent.jupyter.panel")


class Unit:
    """One piece of the plan: import a module (paused between modules), or run
    `work(pause)`, which calls `pause()` between atomic pieces. (Plain classes, not
    dataclasses: this module is imported by `%load_ext`, which must stay fast.)"""

    __slots__ = ("modules", "module", "name", "optional", "turn", "work")

    def __init__(
        self,
        name: str,
        module: str | None = None,
        work: Callable[[Callable[[], None]], None] | None = None,
        optional: bool = False,
        modules: Callable[[], list[str]] | None = None,
        turn: bool = True,
    ) -> None:
        self.name = name
        self.turn = turn  # a first turn needs it: done in the turn if not done before
        self.module = module
        self.work = work
        self.optional = optional  # a module that may not be installed
        self.modules = modules  # more modules to import, listed when this runs


def turn_plan(shell: Any) -> list[Unit]:
    """What a first `%%agent` turn pays for. Whatever is not done when the first cell
    runs is paid there, so what every turn needs comes first. The stream schemas of
    the API the first turn does not use (the beta client serves server-side context
    management) go last, once the agent's settings say which one that is."""
    units: list[Unit] = []

    def agent_and_tools(pause: Callable[[], None]) -> None:
        beta = _agent_and_tools(shell, pause)
        _leave_for_later(units, "stream" if beta else "beta stream")

    units[:] = [
        Unit("import anthropic", module="anthropic"),
        # The HTTP library's connection layer, imported when the first client is made.
        Unit("import httpcore2", module="httpcore2", optional=True),
        Unit("import httpcore", module="httpcore", optional=True),
        *[Unit(f"import {name}", module=name) for name in TURN_MODULES],
        Unit("agent, tool schemas, client", work=agent_and_tools),
        Unit("beta stream schemas", work=lambda pause: _stream_schemas(pause, beta=True)),
        Unit("beta stream parsing", work=lambda pause: _stream_parsing(pause, beta=True)),
        Unit("stream schemas", work=lambda pause: _stream_schemas(pause, beta=False)),
        Unit("stream parsing", work=lambda pause: _stream_parsing(pause, beta=False)),
        Unit(
            "nbagent's other modules",
            modules=lambda: package_modules("nbagent", SKIP),
            turn=False,
        ),
    ]
    return units


def _leave_for_later(units: list[Unit], api: str) -> None:
    """The stream units of the API the first turn does not use ("stream", "beta
    stream") are not the turn's: they go after everything the turn needs."""
    later = [u for u in units if u.name in (f"{api} schemas", f"{api} parsing")]
    for unit in later:
        units.remove(unit)
        unit.turn = False
    first_later = next((i for i, u in enumerate(units) if not u.turn), len(units))
    units[first_later:first_later] = later


def package_modules(package: str, skip: tuple[str, ...] = ()) -> list[str]:
    """The modules of `package` (imported) found on disk, but for `skip` and its children."""
    from pathlib import Path

    names = []
    for folder in getattr(sys.modules[package], "__path__", []):
        root = Path(folder)
        for path in sorted(root.rglob("*.py")):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__main__" or not all(
                (root.joinpath(*parts[1:i]) / "__init__.py").exists() for i in range(2, len(parts))
            ):
                continue
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(parts)
            if not any(name == s or name.startswith(s + ".") for s in skip):
                names.append(name)
    return names


def _stream_schemas(pause: Callable[[], None], *, beta: bool) -> None:
    """Build the SDK's deferred pydantic schemas of the stream events, leaves first,
    one model per piece (a built model's schema is reused by the ones using it)."""
    for model in _stream_models(beta):
        if not model.__pydantic_complete__:
            model.model_rebuild(raise_errors=False, _parent_namespace_depth=0)
        pause()


def _stream_models(beta: bool) -> list[Any]:
    import typing

    import pydantic

    roots: list[Any] = []
    for module, names in (
        (
            ("anthropic.types.beta", ("BetaRawMessageStreamEvent", "BetaMessage")),
            ("anthropic.lib.streaming", ("BetaMessageStreamEvent",)),
        )
        if beta
        else (
            ("anthropic.types", ("RawMessageStreamEvent", "Message")),
            ("anthropic.lib.streaming", ("MessageStreamEvent",)),
        )
    ):
        found = sys.modules.get(module)
        roots += [getattr(found, name) for name in names if hasattr(found, name)]
    seen: set[type] = set()
    order: list[Any] = []

    def visit(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
            if tp in seen:
                return
            seen.add(tp)
            for info in tp.model_fields.values():
                visit(info.annotation)
            order.append(tp)  # after the models it uses
            return
        for arg in typing.get_args(tp):
            visit(arg)

    for root in roots:
        visit(root)
    return order


def _stream_parsing(pause: Callable[[], None], *, beta: bool) -> None:
    """Stream a canned response through the SDK's own client and accumulator (a mock
    transport, nothing leaves the process): the first real stream finds its type
    adapters and request building ready."""
    import anthropic

    try:  # the SDK's HTTP library (httpx before SDK 2)
        http_lib: Any = importlib.import_module("httpx2")
    except ImportError:
        http_lib = importlib.import_module("httpx")
    body = _canned_stream()

    def respond(request: Any) -> Any:
        return http_lib.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    http = http_lib.Client(transport=http_lib.MockTransport(respond))
    client = anthropic.Anthropic(
        api_key="nbagent-warm-up",
        base_url="http://warm-up.invalid",
        max_retries=0,
        http_client=http,
    )
    request: dict[str, Any] = {
        "model": "claude-warm-up",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "warm up"}],
        "tools": [{"name": "t", "description": "t", "input_schema": {"type": "object"}}],
    }
    messages: Any = client.beta.messages if beta else client.messages
    try:
        with messages.stream(**request) as stream:
            for _ in stream:
                pass
            stream.get_final_message()
    finally:
        client.close()


def _canned_stream() -> bytes:
    import json

    usage = {"input_tokens": 1, "output_tokens": 1}
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_warm_up",
                "type": "message",
                "role": "assistant",
                "model": "claude-warm-up",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage,
            },
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "."},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "s"},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "."}},
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_warm_up", "name": "t", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    ]
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def _agent_and_tools(shell: Any, pause: Callable[[], None]) -> bool:
    """The kernel session's agent (settings, workspace, tools) in one piece, each tool's
    schema and input validator, then the provider's client for the current settings
    (the first turn reuses it while they hold): what the first request needs. True if
    that request goes through the SDK's beta client (server-side context management)."""
    from ...request import plan_request
    from ..session import get_session

    agent = get_session(shell).agent
    pause()
    for tool in agent.tools:
        tool.to_param()
        pause()
        getattr(tool, "_validated", None)
        pause()
    getattr(agent.provider, "client", None)
    context = plan_request(agent.current_settings()).context
    return context is not None and (context.server or context.context_editing)
