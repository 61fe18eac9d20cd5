"""The prompt-based tool protocol, for models without native tool calling.

`XmlToolProvider` wraps any provider. It describes the request's tools in the system
prompt, sends no `tools` / `tool_choice`, and reads calls out of the streamed text as it
arrives, in the format models trained on Hermes-style tool use already know:

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Tokyo"}}
    </tool_call>

Text before a call streams on as it comes; a call split across chunks is put together;
the answer comes back with canonical `tool_use` blocks, so the loop, the history and
the surfaces are the same as with native tools. Past calls and results are sent back as
text (results as `<tool_response>` blocks in the user's turn). A call that cannot be read
becomes a call of `invalid_tool_call`, whose result, as the model sees it, says what was
wrong and how to write a call.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from ..events import Event, TextDelta, ToolCallStart, ToolInputDelta
from .base import ModelResponse, take_partial

if TYPE_CHECKING:
    from .base import Provider

OPEN, CLOSE = "<tool_call>", "</tool_call>"
RESPONSE_OPEN = "<tool_response"  # a model that writes its own results has gone astray
INVALID_CALL = "invalid_tool_call"
ID_PREFIX = "toolu_xml_"

CALL_FORMAT = f'{OPEN}\n{{"name": "<tool name>", "arguments": {{<arguments as JSON>}}}}\n{CLOSE}'

INSTRUCTIONS = f"""\
# Tools

You can call the tools below. To call one, write a block exactly like this, with the \
arguments as a JSON object:

{CALL_FORMAT}

Write one block per call; several blocks make calls that do not depend on each other. \
After your calls, stop: the results come back in the next message as <tool_response> \
blocks. Never write <tool_response> blocks yourself. Use a tool as soon as the request \
needs data it gives; when a required argument is missing, ask the user instead of \
guessing. When you have what you need, answer in plain text, without a tool call.

## Available tools
"""

CHOICE_NOTES = {
    "none": "Tools are not available for this answer: do not write a tool call; answer "
    "with the information you already have.",
    "any": "In this answer you must call at least one tool.",
}


class XmlToolProvider:
    """Wraps `inner` so tools go through the prompt instead of native tool calling."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner

    def stream(self, params: dict[str, Any]) -> Generator[Event, None, ModelResponse]:
        request = to_xml_request(params)
        parser = CallParser()
        inner = self.inner.stream(request)
        while True:
            try:
                event = next(inner)
            except StopIteration as stop:
                response: ModelResponse = stop.value
                break
            if isinstance(event, TextDelta):
                yield from _emit(parser.feed(event.text))
            else:
                yield event
        yield from _emit(parser.finish(cut=response.stop_reason == "max_tokens"))
        return _with_calls(response, parser)

    def take_partial(self) -> ModelResponse | None:
        return take_partial(self.inner)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


# --------------------------------------------------------------------------- request


def to_xml_request(params: dict[str, Any]) -> dict[str, Any]:
    """The request with its tools described in the system prompt and its tool calls and
    results written as text."""
    request = {k: v for k, v in params.items() if k not in ("tools", "tool_choice")}
    tools = [t for t in params.get("tools") or [] if "input_schema" in t]
    if tools:
        request["system"] = _system_with(params.get("system"), describe_tools(tools, params))
    calls = _tool_calls(params.get("messages", []))
    request["messages"] = [_as_text_message(m, calls) for m in params.get("messages", [])]
    return request


def describe_tools(tools: list[dict[str, Any]], params: dict[str, Any]) -> str:
    parts = [INSTRUCTIONS]
    for t in tools:
        parts.append(f"### {t['name']}\n{t.get('description', '').strip()}")
        parts.append(f"Arguments (JSON schema): {json.dumps(t['input_schema'])}\n")
    choice = params.get("tool_choice") or {}
    if choice.get("type") == "tool":
        parts.append(f"In this answer you must call the tool {choice['name']}.")
    elif choice.get("type") in CHOICE_NOTES:
        parts.append(CHOICE_NOTES[choice["type"]])
    return "\n".join(parts).rstrip()


def _system_with(system: Any, addition: str) -> Any:
    if not system:
        return addition
    if isinstance(system, str):
        return f"{system}\n\n{addition}"
    blocks = [dict(b) for b in system]
    # The cache breakpoint moves to the new end, so the tools are cached with the prompt.
    marker = blocks[-1].pop("cache_control", None) if blocks else None
    added: dict[str, Any] = {"type": "text", "text": addition}
    if marker is not None:
        added["cache_control"] = marker
    return [*blocks, added]


def _tool_calls(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """tool_use id -> its block, to name each result."""
    return {
        b["id"]: b
        for m in messages
        if m.get("role") == "assistant" and isinstance(m.get("content"), list)
        for b in m["content"]
        if b.get("type") == "tool_use"
    }


def _as_text_message(message: dict[str, Any], calls: dict[str, dict[str, Any]]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, str):
        return message
    blocks: list[dict[str, Any]] = []
    for block in content or []:
        kind = block.get("type")
        if kind == "tool_use":
            blocks.append({"type": "text", "text": call_text(block)})
        elif kind == "tool_result":
            text, images = result_text(block, calls.get(block.get("tool_use_id", "")))
            blocks.append({"type": "text", "text": text})
            blocks += images
        else:
            blocks.append(block)
    return {**message, "content": _merge_text(blocks)}


def call_text(block: dict[str, Any]) -> str:
    """A past tool call as the model wrote it."""
    if block.get("name") == INVALID_CALL:
        raw = str((block.get("input") or {}).get("text", ""))
        return f"{OPEN}{raw}{CLOSE}"
    call = {"name": block["name"], "arguments": block.get("input") or {}}
    return f"{OPEN}\n{json.dumps(call, ensure_ascii=False)}\n{CLOSE}"


def result_text(
    block: dict[str, Any], call: dict[str, Any] | None
) -> tuple[str, list[dict[str, Any]]]:
    """A tool result as a `<tool_response>` block, and the images it carries."""
    name = call["name"] if call else ""
    content = block.get("content", "")
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        text = content
    else:
        texts = []
        for part in content or []:
            if part.get("type") == "text":
                texts.append(part.get("text", ""))
            elif part.get("type") == "image":
                images.append(part)
        text = "\n".join(texts)
    if name == INVALID_CALL:
        # What the runner said ("Unknown tool") is not what the model needs to hear.
        reason = str(((call or {}).get("input") or {}).get("error", "it is malformed"))
        text = f"Your tool call could not be read: {reason}. Write each call as:\n{CALL_FORMAT}"
    error = ' error="true"' if block.get("is_error") or name == INVALID_CALL else ""
    return f'<tool_response name="{name}"{error}>\n{text}\n</tool_response>', images


def _merge_text(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adjacent text blocks joined, so the model reads one turn of text."""
    out: list[dict[str, Any]] = []
    for block in blocks:
        if (
            block.get("type") == "text"
            and out
            and out[-1].get("type") == "text"
            and set(out[-1]) <= {"type", "text"}
            and set(block) <= {"type", "text"}
        ):
            out[-1] = {"type": "text", "text": f"{out[-1]['text']}\n\n{block['text']}"}
        else:
            out.append(block)
    return out


# --------------------------------------------------------------------------- parsing


class CallParser:
    """Splits streamed text into text to show and tool calls, as it arrives.

    Text is released as soon as it cannot be the start of a `<tool_call>` tag; a call is
    released when its closing tag arrives. Whitespace around calls is dropped (text after
    a call starts a new paragraph). After a `<tool_response` the model wrote itself, the
    rest of the answer is dropped.
    """

    def __init__(self) -> None:
        self.buffer = ""
        self.in_call = False
        self.stopped = False
        self.after_call = False
        self.text: list[str] = []
        self.calls: list[dict[str, Any]] = []

    def feed(self, chunk: str) -> list[tuple[str, Any]]:
        if self.stopped:
            return []
        self.buffer += chunk
        out: list[tuple[str, Any]] = []
        while True:
            if self.in_call:
                end = self.buffer.find(CLOSE)
                if end < 0:
                    return out
                out.append(self._call(self.buffer[:end]))
                self.buffer = self.buffer[end + len(CLOSE) :]
                self.in_call = False
                self.after_call = True
                continue
            start = self.buffer.find(OPEN)
            stray = self.buffer.find(RESPONSE_OPEN)
            if stray >= 0 and (start < 0 or stray < start):
                out += self._text(self.buffer[:stray].rstrip())
                self.buffer, self.stopped = "", True
                return out
            if start < 0:
                # Held back: a possible tag start, and trailing whitespace (dropped if a
                # call follows).
                keep = len(self.buffer) - _partial_tag_length(self.buffer)
                ready = self.buffer[:keep].rstrip()
                out += self._text(ready)
                self.buffer = self.buffer[len(ready) :]
                return out
            out += self._text(self.buffer[:start].rstrip())
            self.buffer = self.buffer[start + len(OPEN) :]
            self.in_call = True

    def finish(self, cut: bool = False) -> list[tuple[str, Any]]:
        """The end of the stream: what is still held. An unclosed call is read as a call
        (models often stop right after the JSON), unless the answer was cut at max_tokens."""
        rest, self.buffer = self.buffer, ""
        if self.stopped or not rest:
            return []
        if not self.in_call:
            return self._text(rest.rstrip())
        self.in_call = False
        if cut:
            return self._text(OPEN + rest)
        return [self._call(rest)]

    def _text(self, text: str) -> list[tuple[str, Any]]:
        if self.after_call:
            text = text.lstrip()
            if not text:
                return []
            self.after_call = False
            if self.text:
                text = f"\n\n{text}"
        if not text:
            return []
        self.text.append(text)
        return [("text", text)]

    def _call(self, raw: str) -> tuple[str, Any]:
        block = parse_call(raw)
        self.calls.append(block)
        return ("call", block)


def _partial_tag_length(text: str) -> int:
    """How many trailing characters could be the start of a tag still arriving."""
    for n in range(min(len(text), len(RESPONSE_OPEN)), 0, -1):
        tail = text[-n:]
        if OPEN.startswith(tail) or RESPONSE_OPEN.startswith(tail):
            return n
    return 0


_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def parse_call(raw: str) -> dict[str, Any]:
    """The JSON inside `<tool_call>` tags as a tool_use block; `invalid_tool_call` with
    the reason when it is not `{"name": ..., "arguments": {...}}`."""
    body = _FENCE.sub("", raw.strip()).strip()
    call_id = f"{ID_PREFIX}{uuid.uuid4().hex[:20]}"
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        return _invalid(call_id, raw, f"the call is not valid JSON ({exc.msg})")
    if not isinstance(value, dict):
        return _invalid(call_id, raw, "the call is not a JSON object")
    name = value.get("name")
    if not isinstance(name, str) or not name:
        return _invalid(call_id, raw, 'the call has no "name"')
    arguments: Any = next(
        (value[k] for k in ("arguments", "parameters", "input") if k in value), {}
    )
    if isinstance(arguments, str):  # arguments given as a JSON string
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return _invalid(call_id, raw, '"arguments" is not a JSON object')
    if not isinstance(arguments, dict):
        return _invalid(call_id, raw, '"arguments" is not a JSON object')
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def _invalid(call_id: str, raw: str, reason: str) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": call_id,
        "name": INVALID_CALL,
        "input": {"error": reason, "text": raw},
    }


def _emit(parts: list[tuple[str, Any]]) -> Generator[Event, None, None]:
    for kind, value in parts:
        if kind == "text":
            yield TextDelta(value)
        else:
            yield ToolCallStart(value["id"], value["name"])
            yield ToolInputDelta(value["id"], json.dumps(value["input"]))


def _with_calls(response: ModelResponse, parser: CallParser) -> ModelResponse:
    """The inner response with its text replaced by the parsed text and calls."""
    kept = [b for b in response.content if b.get("type") != "text"]
    text = "".join(parser.text).strip()
    content = [*kept, *([{"type": "text", "text": text}] if text else []), *parser.calls]
    stop = response.stop_reason
    if parser.calls and stop in ("end_turn", "stop_sequence"):
        stop = "tool_use"
    return ModelResponse(
        content=content,
        stop_reason=stop,
        model=response.model,
        input_tokens=response.input_tokens,
        output_tokens=response.output_tokens,
        cache_creation_input_tokens=response.cache_creation_input_tokens,
        cache_read_input_tokens=response.cache_read_input_tokens,
        raw=response.raw,
    )
