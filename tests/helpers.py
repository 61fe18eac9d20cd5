"""Assertions shared by the test modules."""

from __future__ import annotations

from typing import Any


def assert_valid_history(messages: list[dict[str, Any]]) -> None:
    """The Messages API's rules: starts with user, every tool_use answered next."""
    assert messages, "history is empty"
    assert messages[0]["role"] == "user"
    for i, message in enumerate(messages):
        content = message["content"]
        if message["role"] != "assistant" or isinstance(content, str):
            continue
        for block in content:
            if block["type"] == "thinking":
                assert block.get("signature"), f"thinking block without signature in message {i}"
        ids = [b["id"] for b in content if b["type"] == "tool_use"]
        if not ids:
            continue
        assert i + 1 < len(messages), f"tool_use in message {i} is never answered"
        answer = messages[i + 1]
        assert answer["role"] == "user"
        answered = [b["tool_use_id"] for b in answer["content"] if b.get("type") == "tool_result"]
        assert answered[: len(ids)] == ids, f"message {i + 1} answers {answered}, expected {ids}"


def tool_results(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in message["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]


def result_text(block: dict[str, Any]) -> str:
    content = block["content"]
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if b.get("type") == "text")
