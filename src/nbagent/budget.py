"""Cost limits: stop a turn before a request would take spending past a budget.

Checked before each request: the money spent (this turn, this session) plus a
conservative estimate of the request's input cost (every input token priced as a
cache write, the dearest input). Output cannot be known in advance, so a turn can
overshoot by at most one response's output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .models import model_info

IMAGE_TOKENS = 1_600  # a full-size image, as the API counts it at most
_STRUCTURAL = frozenset({"type", "role", "id", "tool_use_id", "cache_control", "signature"})


def estimate_input_tokens(params: dict[str, Any]) -> int:
    """Tokens of a request's input, estimated: text bytes / 4 and a fixed cost per image."""
    chars = 0
    images = 0

    def walk(value: Any) -> None:
        nonlocal chars, images
        if isinstance(value, str):
            chars += len(value)
        elif isinstance(value, dict):
            if value.get("type") == "image":
                images += 1
                return
            for key, item in value.items():
                if key not in _STRUCTURAL:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for key in ("system", "tools", "messages"):
        walk(params.get(key))
    return chars // 4 + images * IMAGE_TOKENS


@dataclass
class Budget:
    turn_usd: float | None
    session_usd: float | None
    model: str
    estimate: Callable[[dict[str, Any]], int] = estimate_input_tokens

    @property
    def active(self) -> bool:
        return self.turn_usd is not None or self.session_usd is not None

    def request_cost(self, params: dict[str, Any]) -> float | None:
        info = model_info(self.model)
        if info.input_price is None:
            return None
        return self.estimate(params) * info.input_price * 1.25 / 1_000_000

    def refusal(
        self, params: dict[str, Any], turn_spent: float | None, session_spent: float | None
    ) -> str | None:
        """Why the next request must not be sent, or None to send it."""
        if not self.active:
            return None
        cost = self.request_cost(params)
        if cost is None:
            return None  # unknown price: said once by `unpriced_notice`
        for label, limit, spent in (
            ("turn", self.turn_usd, turn_spent),
            ("session", self.session_usd, session_spent),
        ):
            if limit is None:
                continue
            spent = spent or 0.0
            if spent + cost > limit:
                return (
                    f"Stopped: the {label} budget of ${limit:.4f} would be passed "
                    f"(${spent:.4f} spent, the next request costs about ${cost:.4f}). "
                    f"Raise it with {'--budget' if label == 'turn' else 'session_budget_usd'}."
                )
        return None

    def unpriced_notice(self) -> str | None:
        if self.active and model_info(self.model).input_price is None:
            return f"The budget is not enforced: the price of {self.model} is unknown."
        return None

    def summary(self, turn_spent: float | None, session_spent: float | None) -> str | None:
        """Spent against budget, for the turn's footer."""
        parts = []
        if self.turn_usd is not None:
            parts.append(f"turn ${turn_spent or 0:.4f} of ${self.turn_usd:.4f}")
        if self.session_usd is not None:
            parts.append(f"session ${session_spent or 0:.4f} of ${self.session_usd:.4f}")
        return "Budget: " + ", ".join(parts) if parts else None
