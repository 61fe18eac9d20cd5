"""The panel's CSS classes and the inline styles its HTML shares.

Classes are `jp-nbagent-panel-<name>`, so the labextension's stylesheet and the
tests can find each part; inline styles use JupyterLab's CSS variables with a
fallback, so the panel also reads well where that stylesheet is absent.
"""

from __future__ import annotations

from typing import Any

CSS_PREFIX = "jp-nbagent-panel"
DIM = "color:var(--jp-ui-font-color2,#777)"
MONO = "font-family:var(--jp-code-font-family,monospace);font-size:0.9em"
ERROR_COLOR = "color:var(--jp-error-color1,#d32f2f)"
SUCCESS_COLOR = "color:var(--jp-success-color1,#388e3c)"


def css(widget: Any, name: str) -> Any:
    """Give `widget` the panel's class for `name` (the panel itself: ""); returns it."""
    widget.add_class(f"{CSS_PREFIX}-{name}" if name else CSS_PREFIX)
    return widget
