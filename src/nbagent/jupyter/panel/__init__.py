"""`nbagent.chat()`: a chat panel (ipywidgets) on the kernel's agent session.

The panel drives the same `KernelSession` as the `%%agent` cells, so both see one
conversation. Its parts, one job each:

- `widget`: `ChatPanel`, the widgets and what the buttons do;
- `worker`: the turn, run in a worker thread so clicks still arrive while it runs;
- `main_thread`: main-thread tools of that turn handed to the kernel's event loop;
- `turn_view`: one assistant turn's widgets, updated in a bounded live window;
- `history`: past turns (of `%%agent` cells too) replayed as widgets;
- `html`, `outputs`, `style`: the HTML, image and rich-output widgets, CSS classes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

try:
    import ipywidgets  # noqa: F401  (a clear message before the submodules need it)
except ImportError as exc:  # pragma: no cover - ipywidgets is a dependency
    raise ImportError("nbagent.chat() needs ipywidgets: pip install ipywidgets") from exc

from .turn_view import TurnView
from .widget import ChatPanel

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["ChatPanel", "TurnView", "chat"]

log = logging.getLogger("nbagent.jupyter")


def chat(shell: InteractiveShell | None = None) -> ChatPanel:
    """A chat panel on this kernel's agent session (the one `%%agent` cells use).

    Display it (it is the cell's value) and talk to the agent there; `%%agent`
    cells continue the same conversation.
    """
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            raise RuntimeError(
                "nbagent.chat() runs in IPython or Jupyter; use nbagent.Agent elsewhere."
            )
    settings = _extension_settings(shell)
    from ..session import get_session

    return ChatPanel(get_session(shell, settings))


def _extension_settings(shell: Any) -> Any:
    """The `NBAgent` settings of the loaded extension (loading it if needed), so
    `%config NBAgent...` and the `%%agent` cells apply to the panel's session too."""
    from ..settings import NBAgent

    def find() -> Any:
        return next(
            (c for c in getattr(shell, "configurables", []) if isinstance(c, NBAgent)), None
        )

    settings = find()
    manager = getattr(shell, "extension_manager", None)
    if settings is None and manager is not None:
        try:
            manager.load_extension("nbagent")
        except Exception:  # the panel still works on its own session
            log.exception("could not load the nbagent extension")
        settings = find()
    return settings
