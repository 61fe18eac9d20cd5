"""Kept only while agent.py still imports it: prices now live in `nbagent.models`.

`cost_usd` here returns 0.0 for unknown models, as it always did; new code uses
`nbagent.models.cost_usd`, which returns None for them. Delete this module once
nothing imports it.
"""

from __future__ import annotations

from . import models
from .models import CACHE_READ_FACTOR, CACHE_WRITE_FACTOR

__all__ = ["CACHE_READ_FACTOR", "CACHE_WRITE_FACTOR", "cost_usd", "prices_for"]


def prices_for(model: str) -> tuple[float, float] | None:
    info = models.model_info(model)
    if info.input_price is None or info.output_price is None:
        return None
    return info.input_price, info.output_price


def cost_usd(
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
) -> float:
    cost = models.cost_usd(
        model, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens
    )
    return 0.0 if cost is None else cost
