"""The one place that turns numbers and values into short display text.

Every surface (cell footer, widget panel, terminal, `%agent usage`, sidebar) shows
usage with `format_usage`, so one turn reads the same everywhere; the definitions
are pinned by `tests/fixtures/usage_format.json`, which the TypeScript side checks
against too. `clip`, `format_args` and `human_size` are the shared forms of a
clipped line, a tool call's arguments and a byte count.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..events import Usage

ELLIPSIS = "…"


def percent(share: float) -> int:
    """A share (0..1) as a whole percentage, halves rounded up.

    Python's `round` rounds halves to even, JavaScript's `Math.round` up: rounding
    half up here keeps both sides of the kernel-frontend boundary equal.
    """
    return math.floor(share * 100 + 0.5)


def format_cost(cost_usd: float | None) -> str:
    return "cost unknown" if cost_usd is None else f"${cost_usd:.4f}"


def format_usage(usage: Usage) -> str:
    """`'20,000 in (90% cached) · 2,048 out · $0.0713'`: input counts every input
    token (uncached, cache writes and cache reads); the share is of cache reads."""
    return (
        f"{usage.input_total:,} in ({percent(usage.cached_share)}% cached) · "
        f"{usage.output_tokens:,} out · {format_cost(usage.cost_usd)}"
    )


def clip(text: str, width: int) -> str:
    """`text` cut to at most `width` characters, ending in "…" when cut."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS


def format_args(args: dict[str, Any], limit: int = 60) -> str:
    """A tool call's arguments on one line, `key=value key=value`, as the tool log
    lines have them: strings as they are, other values as JSON (what the model
    sent), newlines as ⏎, each value clipped to `limit` characters."""
    parts = []
    for key, value in args.items():
        text = value if isinstance(value, str) else _json(value)
        parts.append(f"{key}={clip(text.replace(chr(10), '⏎'), limit)}")
    return " ".join(parts)


def human_size(n: int | None) -> str:
    """A byte count for people: `512 B`, `1.5 KB`, `2.0 GB`; `?` when unknown."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if abs(size) < 1024:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # arguments come from JSON, but callers may pass anything
        return repr(value)
