"""Widgets for a tool's rich outputs in the panel: images and MIME bundles.

Plots come back from `run_python` as base64 PNG/JPEG (tool results) or as MIME
bundles (the session's `on_display`); each becomes its own widget, shown after
the tool line that made it.
"""

from __future__ import annotations

import base64
import binascii
import html
from typing import Any

import ipywidgets as widgets

from ...render.format import clip
from .html import markdown_to_html
from .style import MONO, css

PLAIN_OUTPUT_LIMIT = 5000


def _decode(data: Any) -> bytes | None:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        try:
            return base64.b64decode(data)
        except (binascii.Error, ValueError):
            return None
    return None


def image_widget(data: Any, media_type: str) -> Any:
    """An `Image` widget of raw or base64 image data, or None if it does not decode."""
    raw = _decode(data)
    if raw is None:
        return None
    image = widgets.Image(value=raw, format=media_type.split("/")[-1])
    image.layout.max_width = "100%"
    return css(image, "image")


def bundle_widget(bundle: dict[str, Any]) -> Any:
    """A widget for one rich output (MIME bundle) of run_python, or None."""
    for mime in ("image/png", "image/jpeg"):
        if mime in bundle:
            widget = image_widget(bundle[mime], mime)
            if widget is not None:
                return widget
    if "text/html" in bundle:
        value = bundle["text/html"]
    elif "image/svg+xml" in bundle:
        value = bundle["image/svg+xml"]
    elif "text/markdown" in bundle:
        value = markdown_to_html(str(bundle["text/markdown"]))
    elif "text/plain" in bundle:
        plain = clip(str(bundle["text/plain"]), PLAIN_OUTPUT_LIMIT)
        value = f'<pre style="{MONO}">{html.escape(plain)}</pre>'
    else:
        return None
    if isinstance(value, list):  # nbformat-style multiline strings
        value = "".join(value)
    return css(widgets.HTML(value=str(value)), "output")
