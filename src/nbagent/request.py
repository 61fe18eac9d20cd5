"""Build one Messages API request from a turn's settings, the model table and the history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import Settings
from .history import with_cache_breakpoint
from .models import effort_param, model_info, thinking_param


@dataclass(frozen=True)
class RequestPlan:
    """What a turn sends besides the messages: decided once per turn from the settings."""

    model: str
    max_tokens: int
    thinking: dict[str, Any] | None
    effort: str | None
    notices: tuple[str, ...]  # one-line notes for the user (a dropped effort, an unknown model)


def plan_request(settings: Settings) -> RequestPlan:
    from .models import unknown_model_notice

    info = model_info(settings.model)
    notices: list[str] = []
    unknown = unknown_model_notice(settings.model)
    if unknown:
        notices.append(unknown)
    effort, dropped = effort_param(info, settings.effort)
    if dropped:
        notices.append(dropped)
    return RequestPlan(
        model=settings.model,
        max_tokens=settings.max_tokens,
        thinking=thinking_param(info, settings.thinking),
        effort=effort,
        notices=tuple(notices),
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
    """`messages.create` keyword arguments; `final` forbids tool use (the turn limit)."""
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
        "messages": with_cache_breakpoint(messages) if prompt_caching else messages,
    }
    if tools:
        params["tools"] = tools
        if final:
            # The tools stay declared (the history holds tool calls), but the model
            # must answer from what it has.
            params["tool_choice"] = {"type": "none"}
    if plan.thinking is not None:
        params["thinking"] = plan.thinking
    if plan.effort:
        params["output_config"] = {"effort": plan.effort}
    return params
