"""The panel's HTML: transcript blocks, the user's messages, approvals, usage, errors.

Text and thinking are Markdown (rendered with mistune, escaping raw HTML, so a
model cannot inject markup); everything else is escaped text. Pure functions of
their input, so the live turn and the history replay render alike.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable

from ...events import ToolCall, Usage
from ...render.format import clip, format_usage
from ...render.transcript import Block
from .style import CSS_PREFIX, DIM, ERROR_COLOR, MONO, SUCCESS_COLOR

USER_TEXT_LIMIT = 4000
ARG_LIMIT = 1500
TOOL_ARGS_WIDTH = 120
TOOL_SUMMARY_WIDTH = 160


def _make_markdown() -> Callable[[str], str]:
    try:
        import mistune
    except ImportError:
        return preformatted
    md = mistune.create_markdown(escape=True, plugins=["strikethrough", "table", "url"])

    def render(text: str) -> str:
        try:
            return str(md(text))
        except Exception:  # a parser bug must not lose the text
            return preformatted(text)

    return render


def preformatted(text: str) -> str:
    return f'<pre style="white-space:pre-wrap">{html.escape(text)}</pre>'


markdown_to_html = _make_markdown()


def block_html(block: Block, *, show_thinking: bool = True) -> str:
    """One transcript block as HTML: text as Markdown, thinking collapsed, tools compact."""
    kind = block.kind
    if kind in ("text", "thinking") and not block.text.strip():
        return ""
    if kind == "text":
        return f'<div class="{CSS_PREFIX}-text">{markdown_to_html(block.text)}</div>'
    if kind == "thinking":
        if not show_thinking:
            return ""
        label = "💭 thinking" if block.done else "💭 thinking…"
        return (
            f'<details class="{CSS_PREFIX}-thinking" style="{DIM};opacity:0.75">'
            f"<summary>{label}</summary>{markdown_to_html(block.text)}</details>"
        )
    if kind == "tool":
        return _tool_html(block)
    if kind == "error":
        return (
            f'<div class="{CSS_PREFIX}-error-line" style="{ERROR_COLOR}">'
            f"<b>Error:</b> {html.escape(block.text)}</div>"
        )
    return (
        f'<div class="{CSS_PREFIX}-notice" style="{DIM}"><i>ℹ️ {html.escape(block.text)}</i></div>'
    )


def _tool_html(block: Block) -> str:
    if block.is_error:
        mark = f'<span style="{ERROR_COLOR}">✗</span>'
    elif block.done:
        mark = f'<span style="{SUCCESS_COLOR}">✓</span>'
    else:
        mark = f'<span style="{DIM}">…</span>'
    summary = (
        f' <span style="{DIM}">{html.escape(clip(block.summary, TOOL_SUMMARY_WIDTH))}</span>'
        if block.summary
        else ""
    )
    return (
        f'<div class="{CSS_PREFIX}-tool" style="{MONO}">⚙ <b>{html.escape(block.name)}</b>'
        f"({html.escape(clip(block.text, TOOL_ARGS_WIDTH))}) {mark}{summary}</div>"
    )


def blocks_html(
    blocks: list[Block], *, show_thinking: bool = True, status: str = "", footer: str = ""
) -> str:
    """Blocks as HTML, with a status line (a live turn) or a footer (a finished one)."""
    parts = [block_html(b, show_thinking=show_thinking) for b in blocks]
    if status:
        parts.append(
            f'<div class="{CSS_PREFIX}-status" style="{DIM}"><i>⏳ {html.escape(status)}</i></div>'
        )
    if footer:
        parts.append(
            f'<div class="{CSS_PREFIX}-footer" style="{DIM};font-size:0.8em">'
            f"{html.escape(footer)}</div>"
        )
    return "\n".join(p for p in parts if p)


def user_html(text: str) -> str:
    """One message of the user's, as a shaded box."""
    return (
        '<div style="background:var(--jp-layout-color2,#f0f0f0);border-radius:4px;'
        'padding:4px 8px;margin:4px 0;white-space:pre-wrap">'
        f"<b>You</b><br>{html.escape(clip(text, USER_TEXT_LIMIT))}</div>"
    )


def approval_html(call: ToolCall) -> str:
    """The question above the approval buttons: the tool and each argument."""
    rows = []
    for key, value in call.input.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)
        text = clip(text, ARG_LIMIT)
        if "\n" in text or len(text) > 80:
            rows.append(
                f"<div>{html.escape(key)}:</div>"
                f'<pre style="{MONO};white-space:pre-wrap;margin:2px 0 4px 1em">'
                f"{html.escape(text)}</pre>"
            )
        else:
            rows.append(f'<div style="{MONO}">{html.escape(key)} = {html.escape(text)}</div>')
    return f"<div><b>Allow {html.escape(call.name)}?</b></div>" + "".join(rows)


def usage_html(usage: Usage) -> str:
    """The conversation's usage beside the buttons, in the words of every surface."""
    return f'<span style="{DIM};font-size:0.9em">{html.escape(format_usage(usage))}</span>'


def error_html(message: str) -> str:
    return f'<span style="{ERROR_COLOR}">⚠ {html.escape(message)}</span>' if message else ""
