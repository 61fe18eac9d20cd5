"""Prices per million tokens, for the cost shown after each turn.

Cache writes (5-minute TTL) cost 1.25x the input price and cache reads 0.1x
(see the prompt-caching reference). Unknown models (local servers, proxies
with their own names) cost 0: we would rather show nothing than a wrong figure.
"""

from __future__ import annotations

# (model-name prefix, input $/MTok, output $/MTok); first match wins, so more
# specific prefixes come first.
_PRICES: tuple[tuple[str, float, float], ...] = (
    ("claude-fable-5", 10.0, 50.0),
    ("claude-mythos-5", 10.0, 50.0),
    ("claude-opus-4-8", 5.0, 25.0),
    ("claude-opus-4-7", 5.0, 25.0),
    ("claude-opus-4-6", 5.0, 25.0),
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4-1", 15.0, 75.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("claude-3-haiku", 0.25, 1.25),
)

CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1


def prices_for(model: str) -> tuple[float, float] | None:
    for prefix, inp, out in _PRICES:
        if model.startswith(prefix):
            return inp, out
    return None


def cost_usd(
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
) -> float:
    prices = prices_for(model)
    if prices is None:
        return 0.0
    inp, out = prices
    return (
        input_tokens * inp
        + cache_creation_input_tokens * inp * CACHE_WRITE_FACTOR
        + cache_read_input_tokens * inp * CACHE_READ_FACTOR
        + output_tokens * out
    ) / 1_000_000
