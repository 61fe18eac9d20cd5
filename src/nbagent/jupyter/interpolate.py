"""`{name}`, `{In[3]}`, `{Out[3]}` and `{Err}` in prompts, as in jupyter-ai.

Only identifier-shaped braces are placeholders, so prompts can still contain
code like `{"a": 1}`; `{{` and `}}` are literal braces. An unknown name is an
error before anything is sent.
"""

from __future__ import annotations

import re
import sys
import traceback
from typing import Any

from ..errors import NBAgentError
from ..tools.clip import clip_text

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?:\[(-?\d+)\])?\}")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class InterpolationError(NBAgentError):
    """A placeholder names nothing in the user's namespace."""


def interpolate(
    prompt: str,
    user_ns: dict[str, Any],
    *,
    max_chars: int = 2000,
    raw_inputs: list[str] | None = None,
) -> str:
    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "{{":
            return "{"
        if whole == "}}":
            return "}"
        name, index = match.group(1), match.group(2)
        if name == "Err" and index is None:
            return _last_error()
        if name in ("In", "Out") and index is not None:
            # In[n] as the user typed it (magics included), not IPython's transformed source.
            ns = {**user_ns, "In": raw_inputs} if name == "In" and raw_inputs else user_ns
            return _history(ns, name, int(index), max_chars)
        if index is not None:
            raise InterpolationError(f"{whole}: indexing is only supported for In[n] and Out[n]")
        if name not in user_ns:
            raise InterpolationError(
                f"{{{name}}} is not defined in the notebook; define it first, or write {{{{{name}}}}} for literal braces"
            )
        return clip_text(_repr(user_ns[name]), max_chars)

    return _PLACEHOLDER.sub(replace, prompt)


def _history(user_ns: dict[str, Any], name: str, index: int, max_chars: int) -> str:
    store = user_ns.get(name)
    try:
        value = store[index]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        raise InterpolationError(
            f"{{{name}[{index}]}}: there is no {name}[{index}] in this session"
        ) from None
    return clip_text(value if name == "In" else _repr(value), max_chars)


def _last_error() -> str:
    if getattr(sys, "last_value", None) is None:
        raise InterpolationError("{Err}: no error has been raised in this session yet")
    lines = traceback.format_exception(sys.last_type, sys.last_value, sys.last_traceback)
    return _ANSI.sub("", "".join(lines[-30:])).strip()


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a broken __repr__ should not block the prompt
        return f"<{type(value).__name__} (repr failed: {exc})>"
