"""Which context management a request uses, and the API parameters of the server side.

Server-side compaction is the beta `context_management` edit `compact_20260112`
(header `compact-2026-01-12`): when a request's input passes the trigger, the API
summarises the conversation into a `compaction` block at the start of its answer,
and drops everything before that block from later requests. The block is kept in
the history exactly as it came (`history.block_to_param`).

Client-side compaction (`client_compaction`) serves every other model and endpoint,
and recovers from a `prompt is too long` error on any of them. An endpoint that
refuses the beta (an Anthropic-compatible proxy or local server that does not know
`context_management`) gets the same request again without it, and client-side
compaction from then on (`refuses_context_management`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..models import ModelInfo, model_info

COMPACTION_BETA = "compact-2026-01-12"
COMPACT_EDIT = "compact_20260112"
CONTEXT_EDITING_BETA = "context-management-2025-06-27"
CLEAR_TOOL_USES_EDIT = "clear_tool_uses_20250919"
# The API refuses a compaction trigger below this many input tokens.
MIN_SERVER_TRIGGER = 50_000
# What an endpoint's refusal names when it does not take the context management sent:
# the parameter, the beta header or the edits (e.g. pydantic's `extra_forbidden` error
# with `"loc": ["body", "context_management"]`).
_REFUSAL_WORDS = (
    "context_management",
    "context-management",
    "anthropic-beta",
    COMPACTION_BETA,
    COMPACT_EDIT,
    CLEAR_TOOL_USES_EDIT,
)

Mode = Literal["server", "client", "off"]


@dataclass(frozen=True)
class ContextPolicy:
    """How one turn keeps its requests inside the model's window."""

    mode: Mode
    window: int
    trigger: int  # input tokens at which the conversation is compacted
    context_editing: bool = False
    notice: str | None = None  # why the mode differs from the setting, said once a turn

    @property
    def server(self) -> bool:
        return self.mode == "server"


def context_policy(
    model: str, compaction: str, compact_at: float, context_editing: bool = False
) -> ContextPolicy:
    """The policy for `model` under the `compaction` setting (auto, server, client, off)."""
    info = model_info(model)
    window = info.context_window
    trigger = int(window * min(compact_at, 1.0))
    setting = compaction.strip().lower()
    if setting == "off":
        return ContextPolicy("off", window, window, context_editing)
    if setting in ("auto", "server") and _server_capable(info, trigger):
        return ContextPolicy("server", window, max(trigger, MIN_SERVER_TRIGGER), context_editing)
    notice = None
    if setting == "server":
        notice = (
            f"Server-side compaction is not available for {model} "
            f"({_why_not(info, trigger)}): the conversation is compacted on the client."
        )
    return ContextPolicy("client", window, trigger, context_editing, notice)


def _server_capable(info: ModelInfo, trigger: int) -> bool:
    # A window too small for the API's minimum trigger cannot compact on the server.
    return info.server_compaction and max(trigger, MIN_SERVER_TRIGGER) < info.context_window


def _why_not(info: ModelInfo, trigger: int) -> str:
    if not info.server_compaction:
        return "the model does not support it"
    return f"its window is below the API's {MIN_SERVER_TRIGGER:,}-token minimum trigger"


def request_params(policy: ContextPolicy) -> dict[str, Any]:
    """`betas` and `context_management` for a request under `policy` (empty: none)."""
    edits: list[dict[str, Any]] = []
    betas: list[str] = []
    if policy.context_editing and policy.mode != "off":
        edits.append({"type": CLEAR_TOOL_USES_EDIT})
        betas.append(CONTEXT_EDITING_BETA)
    if policy.server:
        edits.append(
            {"type": COMPACT_EDIT, "trigger": {"type": "input_tokens", "value": policy.trigger}}
        )
        betas.append(COMPACTION_BETA)
    if not edits:
        return {}
    return {"betas": betas, "context_management": {"edits": edits}}


def refuses_context_management(exc: BaseException) -> bool:
    """A 400 or 422 that names the context management a request carried: the endpoint
    does not take it, and the request without it may well pass."""
    import anthropic

    if not isinstance(exc, anthropic.APIStatusError) or exc.status_code not in (400, 422):
        return False
    text = f"{exc} {exc.body!r}".lower()
    return any(word in text for word in _REFUSAL_WORDS)


def without_server_side(policy: ContextPolicy, model: str, compact_at: float) -> ContextPolicy:
    """`policy` for an endpoint that refused server-side context management: client-side
    compaction (if any was on), no context editing."""
    if policy.mode == "off":
        return ContextPolicy("off", policy.window, policy.trigger)
    return context_policy(model, "client", compact_at)


def has_compaction(content: list[dict[str, Any]]) -> bool:
    """Whether a response's content starts a new context with a compaction block."""
    return any(b.get("type") == "compaction" for b in content)
