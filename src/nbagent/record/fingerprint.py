"""The normalised hash of a tool result, which replay compares with its recording.

A re-run of the same code gives the same result up to what changes on every run:
memory addresses (`<object at 0x7f3a...>`) and timings (`1.23 s`, `Wall time: 4 ms`,
`0:00:01.5`). Those are masked before hashing. Images are compared by media type
and pixel size, not bytes: a re-rendered figure differs in its bytes (encoder,
fonts) but not in what it shows at that size.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
from typing import Any

_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{4,}\b")
_DURATION = re.compile(
    r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\s?"
    r"(?:ns|µs|μs|us|ms|s|sec|secs|seconds?|min|mins|minutes?|h|hours?)(?![\w])"
)
_CLOCK = re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b")

# Enough of a base64 image to read its header (JPEG's size marker can follow EXIF data).
_HEADER_CHARS = 96 * 1024


def mask_text(text: str) -> str:
    """`text` with memory addresses and timings replaced by fixed placeholders."""
    text = _ADDRESS.sub("0x…", text)
    text = _CLOCK.sub("<clock>", text)
    return _DURATION.sub("<time>", text)


def tool_result_fingerprint(block: dict[str, Any]) -> str:
    """A short hash of one `tool_result` block's content and error flag, normalised."""
    content = block.get("content", "")
    parts: list[str] = []
    if isinstance(content, str):
        parts.append("text:" + mask_text(content))
    elif isinstance(content, list):
        for item in content:
            parts.append(_part(item) if isinstance(item, dict) else "?")
    digest = hashlib.sha256(
        json.dumps([bool(block.get("is_error")), parts], ensure_ascii=False).encode()
    )
    return digest.hexdigest()[:20]


def request_tool_results(params: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(tool name, tool_use id, fingerprint) of each result a request sends back: the
    `tool_result` blocks of its last message, which answer the previous response."""
    messages = params.get("messages") or []
    if not messages or messages[-1].get("role") != "user":
        return []
    content = messages[-1].get("content")
    if not isinstance(content, list):
        return []
    names: dict[str, str] = {}
    if len(messages) >= 2 and isinstance(messages[-2].get("content"), list):
        for b in messages[-2]["content"]:
            if isinstance(b, dict) and b.get("type") == "tool_use":
                names[str(b.get("id"))] = str(b.get("name"))
    found = []
    for b in content:
        if isinstance(b, dict) and b.get("type") == "tool_result":
            call_id = str(b.get("tool_use_id"))
            found.append((names.get(call_id, "a tool"), call_id, tool_result_fingerprint(b)))
    return found


def _part(item: dict[str, Any]) -> str:
    kind = item.get("type")
    if kind == "text":
        return "text:" + mask_text(str(item.get("text", "")))
    if kind == "image":
        return "image:" + _image_signature(item.get("source") or {})
    # Documents and anything newer: their JSON, without cache markers.
    item = {k: v for k, v in item.items() if k != "cache_control"}
    return f"{kind}:" + mask_text(json.dumps(item, sort_keys=True, ensure_ascii=False))


def _image_signature(source: dict[str, Any]) -> str:
    media = str(source.get("media_type", ""))
    data = source.get("data")
    if not isinstance(data, str):
        return f"{media}:{source.get('type', '')}:{source.get('url', '')}"
    size = image_size(data)
    if size is None:  # an unknown format: its byte length stands in for its size
        return f"{media}:{len(data)}b"
    return f"{media}:{size[0]}x{size[1]}"


def image_size(data_b64: str) -> tuple[int, int] | None:
    """(width, height) of a base64 PNG, GIF or JPEG image, from its header; else None."""
    head = data_b64[:_HEADER_CHARS]
    head = head[: len(head) - len(head) % 4]
    try:
        raw = base64.b64decode(head, validate=False)
    except (binascii.Error, ValueError):
        return None
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) >= 24:
        width, height = struct.unpack(">II", raw[16:24])
        return width, height
    if raw[:6] in (b"GIF87a", b"GIF89a") and len(raw) >= 10:
        width, height = struct.unpack("<HH", raw[6:10])
        return width, height
    if raw[:2] == b"\xff\xd8":
        return _jpeg_size(raw)
    return None


def _jpeg_size(raw: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(raw):
        if raw[i] != 0xFF:
            i += 1
            continue
        marker = raw[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2  # padding and markers without a length
            continue
        (length,) = struct.unpack(">H", raw[i + 2 : i + 4])
        # Start-of-frame markers (not DHT C4, JPG C8, DAC CC) carry height, then width.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", raw[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None
