"""Build one Messages API request from a turn's settings, the model table and the history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import Settings, missing_key_message
from .context.server_compaction import (
    ContextPolicy,
    context_policy,
    request_params,
    without_server_side,
)
from .errors import ConfigError
from .history import request_messages
from .models import effort_param, model_info, thinking_param


@dataclass(frozen=True)
class RequestPlan:
    """What a turn sends besides the messages: decided once per turn from the settings."""

    model: str
    max_tokens: int
    thinking: dict[str, Any] | None
    effort: str | None
    notices: tuple[str, ...]  # one-line notes for the user (a dropped effort, an unknown model)
    context: ContextPolicy | None = None  # compaction and context editing; None: none


def plan_request(settings: Settings, *, server_context: bool = True) -> RequestPlan:
    """`server_context=False`: the endpoint refused server-side context management
    earlier in the session, so none is planned (compaction runs on the client)."""
    from .models import unknown_model_notice

    info = model_info(settings.model)
    notices: list[str] = []
    unknown = unknown_model_notice(settings.model)
    if unknown:
        notices.append(unknown)
    effort, dropped = effort_param(info, settings.effort)
    if dropped:
        notices.append(dropped)
    context = context_policy(
        settings.model, settings.compaction, settings.compact_at, settings.context_editing
    )
    if not server_context and (context.server or context.context_editing):
        context = without_server_side(context, settings.model, settings.compact_at)
    elif context.notice:
        notices.append(context.notice)
    from .providers.registry import parse_model_name

    return RequestPlan(
        model=parse_model_name(settings.model)[1],  # the provider gets its own model id
        max_tokens=settings.max_tokens,
        thinking=thinking_param(info, settings.thinking),
        effort=effort,
        notices=tuple(notices),
        context=context,
    )


def build_request(
    plan: RequestPlan,
    *,
    system: str | list[dict[str, Any]],
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    prompt_caching: bool,
    final: bool = False,
) -> dict[str, Any]:
    """`messages.create` keyword arguments (plus `betas` for beta features).

    `final` (the turn limit) changes nothing here: the loop asks for the final answer
    in words, because a different `tool_choice` would invalidate the cached
    conversation. Tools stay declared and sorted, and the system prompt stays as it
    is, so their cache entry outlives every turn and every compaction.
    """
    if prompt_caching:
        blocks: list[dict[str, Any]] = (
            [{"type": "text", "text": system}]
            if isinstance(system, str)
            else [dict(b) for b in system]
        )
        if blocks:
            blocks[-1]["cache_control"] = {"type": "ephemeral"}
        system_param: Any = blocks
    else:
        system_param = system
    params: dict[str, Any] = {
        "model": plan.model,
        "max_tokens": plan.max_tokens,
        "system": system_param,
        "messages": request_messages(messages, prompt_caching),
    }
    if tools:
        params["tools"] = tools
    if plan.thinking is not None:
        params["thinking"] = plan.thinking
    if plan.effort:
        params["output_config"] = {"effort": plan.effort}
    if plan.context is not None:
        params.update(request_params(plan.context))
    return params


class TurnRequests:
    """The requests of one turn, each built from the history as it stands then:
    `requests(final)` gives the `messages.create` keyword arguments (plus `betas`)."""

    def __init__(
        self,
        settings: Settings,
        plan: RequestPlan,
        *,
        system: str | list[dict[str, Any]],
        history: list[dict[str, Any]],
        tools: Callable[[], list[dict[str, Any]]],
        tool_choice: dict[str, Any] | None,
        needs_key: bool,
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.system = system
        self.history = history
        self.tools = tools
        self.tool_choice = tool_choice
        self.needs_key = needs_key  # the Anthropic key is checked here, before a request

    def __call__(self, final: bool) -> dict[str, Any]:
        settings = self.settings
        if self.needs_key and not (settings.api_key or settings.auth_token):
            raise ConfigError(missing_key_message())
        params = build_request(
            self.plan,
            system=self.system,
            messages=self.history,
            tools=self.tools(),
            prompt_caching=settings.prompt_caching,
            final=final,
        )
        return apply_tool_choice(params, self.tool_choice, final)

    def without_server_context(self) -> ContextPolicy:
        """The endpoint refused server-side context management: plan the rest of the
        turn without it, and return the client-side policy that replaces it."""
        self.plan = plan_request(self.settings, server_context=False)
        assert self.plan.context is not None
        return self.plan.context


def normalize_tool_choice(choice: Any, tool_names: set[str]) -> dict[str, Any] | None:
    """The Messages API's tool_choice from a dict or a short form: "auto", "any", "none"
    or a tool's name."""
    if choice is None or isinstance(choice, dict):
        return choice
    if choice in ("auto", "any", "none"):
        return {"type": choice}
    if isinstance(choice, str):
        if choice not in tool_names:
            raise ConfigError(f"tool_choice names no tool: {choice!r}")
        return {"type": "tool", "name": choice}
    raise ConfigError(
        f"tool_choice must be a dict, 'auto', 'any', 'none' or a tool name: {choice!r}"
    )


def apply_tool_choice(
    params: dict[str, Any], choice: dict[str, Any] | None, final: bool
) -> dict[str, Any]:
    """Put the caller's tool_choice in a request (the turn limit's final answer wins).

    The API rejects a forced choice (any, or a named tool) together with thinking, so
    those requests go without thinking.
    """
    if choice is None or final or "tools" not in params:
        return params
    params = {**params, "tool_choice": choice}
    if choice.get("type") in ("any", "tool"):
        params.pop("thinking", None)
    return params
