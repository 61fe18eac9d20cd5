"""Build one Messages API request from a turn's settings, the model table and the history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import Settings
from .context.server_compaction import ContextPolicy, context_policy, request_params
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
    from .context.server_compaction import without_server_side
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
