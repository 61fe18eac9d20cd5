"""nbagent: an AI agent inside the Jupyter kernel, powered by Claude.

    from nbagent import Agent, tool
    agent = Agent()
    print(agent.run("Summarise data.csv").text)

In IPython or Jupyter: `%load_ext nbagent`, then `%%agent` cells.
Names are imported lazily so that loading the extension stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

_EXPORTS = {
    "Agent": ".agent",
    "RunResult": ".agent",
    "tool": ".tools.base",
    "Tool": ".tools.base",
    "ToolError": ".tools.base",
    "ToolCall": ".events",
    "ToolOutput": ".events",
    "ConfigError": ".errors",
    "events": ".events",
    "chat": ".jupyter.panel",
}

if TYPE_CHECKING:
    from . import events
    from .agent import Agent, RunResult
    from .errors import ConfigError
    from .events import ToolCall, ToolOutput
    from .tools.base import Tool, ToolError, tool

__all__ = [
    "Agent",
    "ConfigError",
    "RunResult",
    "Tool",
    "ToolCall",
    "ToolError",
    "ToolOutput",
    "chat",
    "events",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nbagent' has no attribute {name!r}")
    if name == "events":
        return importlib.import_module(module, __name__)
    return getattr(importlib.import_module(module, __name__), name)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the prebuilt JupyterLab extension is (for `jupyter labextension develop`)."""
    return [{"src": "labextension", "dest": "nbagent-labextension"}]


def load_ipython_extension(ipython: Any) -> None:
    from .jupyter.extension import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .jupyter.extension import unload

    unload(ipython)
