"""MCP tools as nbagent tools: names, permission categories, input checks and results.

A server's tool `query` becomes `mcp__<server>__query`, sanitised to the Messages API's
tool-name rule (`^[a-zA-Z0-9_-]{1,128}$`) and shortened with a hash suffix when too
long. Its input schema is sent as the server declared it, and each call's input is
checked against it (jsonschema) before it goes to the server, so a bad input is an
`is_error` result the model can fix, as for any other tool.

Categories follow MCP's annotation defaults: `readOnlyHint` makes a tool a read tool;
otherwise `destructiveHint: false` makes it a write tool; anything else, including an
unannotated tool, is destructive. A `category` in the server's config overrides that.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from ..events import ToolOutput
from ..tools.base import Category, SchemaTool, ToolInputError, schema_problems

NAME_LIMIT = 128
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9_-]")
# Image types the Messages API takes in a tool result.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")

# (remote tool name, arguments) -> what the server answered.
CallFunction = Callable[[str, dict[str, Any]], ToolOutput]


def tool_name(server: str, tool: str) -> str:
    """`mcp__<server>__<tool>`, with characters outside `[a-zA-Z0-9_-]` as `_`, and a
    hash of the full name at the end when it is longer than 128 characters."""
    raw = f"mcp__{server}__{tool}"
    name = _NOT_ALLOWED.sub("_", raw)
    if len(name) <= NAME_LIMIT:
        return name
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:8]
    return name[: NAME_LIMIT - len(digest) - 1] + "_" + digest


def unique_names(server: str, tools: list[str]) -> dict[str, str]:
    """Each remote tool name mapped to its nbagent name; two names that sanitise alike
    (`a.b`, `a_b`) are told apart by a hash suffix."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for remote in sorted(tools):
        name = tool_name(server, remote)
        if name in taken:
            digest = hashlib.sha256(f"{server}\0{remote}".encode()).hexdigest()[:8]
            name = name[: NAME_LIMIT - len(digest) - 1] + "_" + digest
        taken.add(name)
        out[remote] = name
    return out


def category_from_annotations(annotations: Any) -> Category:
    """read for `readOnlyHint`; write for `destructiveHint: false`; else destructive."""
    if annotations is None:
        return "destructive"
    if getattr(annotations, "read_only_hint", None) is True:
        return "read"
    if getattr(annotations, "destructive_hint", None) is False:
        return "write"
    return "destructive"


class McpTool(SchemaTool):
    """A tool served by an MCP server: `Tool.from_schema`'s kind of tool, with the
    server's JSON schema, checked in full (MCP schemas nest) before the call."""

    def __init__(
        self,
        *,
        name: str,
        server: str,
        remote_name: str,
        description: str,
        input_schema: dict[str, Any],
        category: Category,
        call: CallFunction,
    ) -> None:
        from jsonschema.validators import validator_for

        def forward(arguments: dict[str, Any]) -> ToolOutput:
            return call(remote_name, arguments)

        super().__init__(
            name,
            description,
            input_schema,
            forward,
            read_only=category == "read",
            category=category,
        )
        validator_cls = validator_for(self.input_schema)
        validator_cls.check_schema(self.input_schema)  # a broken schema is refused at listing
        self._validator = validator_cls(self.input_schema)
        self.server = server
        self.remote_name = remote_name

    def __repr__(self) -> str:
        return f"<McpTool {self.name} ({self.server}:{self.remote_name}) category={self.category}>"

    def call(self, input: object) -> ToolOutput:
        if not isinstance(input, dict):
            raise ToolInputError(f"input must be a JSON object, got {type(input).__name__}")
        # The same messages as any schema tool's first; then what lies deeper.
        problems = schema_problems(self.input_schema, input) or [
            _describe(error) for error in self._validator.iter_errors(input)
        ]
        if problems:
            raise ToolInputError(f"Invalid input for tool {self.name}: " + "; ".join(problems))
        return self.func(input)  # type: ignore[no-any-return]


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "input"
    return f"'{where}': {error.message}"


def describe_tool(server: str, tool: Any) -> str:
    """The description the model reads: the server's, naming the server it comes from."""
    text = (getattr(tool, "description", None) or "").strip()
    title = getattr(tool, "title", None) or getattr(
        getattr(tool, "annotations", None), "title", None
    )
    head = f"[MCP server '{server}'] "
    if title and title not in text:
        head += f"{title}. "
    return head + (text or f"The '{tool.name}' tool.")


def make_tools(
    server: str,
    listed: list[Any],
    *,
    override: Callable[[str], Category | None],
    call: CallFunction,
) -> tuple[list[McpTool], list[str]]:
    """nbagent tools for a server's listed tools, and one line per tool left out."""
    names = unique_names(server, [t.name for t in listed])
    tools: list[McpTool] = []
    problems: list[str] = []
    for listing in sorted(listed, key=lambda t: t.name):
        category = override(listing.name) or category_from_annotations(listing.annotations)
        try:
            tools.append(
                McpTool(
                    name=names[listing.name],
                    server=server,
                    remote_name=listing.name,
                    description=describe_tool(server, listing),
                    input_schema=listing.input_schema,
                    category=category,
                    call=call,
                )
            )
        except Exception as exc:  # jsonschema.SchemaError, or a schema that is not an object
            problems.append(
                f"MCP server '{server}': tool '{listing.name}' was left out: its input schema "
                f"is not valid ({str(exc).splitlines()[0]})"
            )
    return tools, problems


# -- results ---------------------------------------------------------------------


def result_to_output(result: Any) -> ToolOutput:
    """An MCP `CallToolResult` as a ToolOutput: text, image and resource content become
    content blocks; structured content is shown as JSON when there is nothing else."""
    blocks: list[dict[str, Any]] = []
    for item in result.content or []:
        blocks.extend(content_blocks(item))
    if not blocks and getattr(result, "structured_content", None) is not None:
        blocks.append({"type": "text", "text": json.dumps(result.structured_content, indent=2)})
    is_error = bool(getattr(result, "is_error", False))
    if not blocks:
        return ToolOutput("(no output)", is_error=is_error)
    if all(b["type"] == "text" for b in blocks):
        return ToolOutput("\n".join(b["text"] for b in blocks), is_error=is_error)
    return ToolOutput(blocks, is_error=is_error)


def content_blocks(item: Any) -> list[dict[str, Any]]:
    """Messages API blocks for one MCP content item."""
    kind = getattr(item, "type", None)
    if kind == "text":
        return [{"type": "text", "text": item.text}]
    if kind == "image":
        return [_binary_block(item.mime_type, item.data, "image")]
    if kind == "audio":
        return [{"type": "text", "text": f"[audio ({item.mime_type}) not shown]"}]
    if kind == "resource_link":
        mime = f", {item.mime_type}" if getattr(item, "mime_type", None) else ""
        label = getattr(item, "title", None) or item.name
        return [{"type": "text", "text": f"[resource link: {label} <{item.uri}>{mime}]"}]
    if kind == "resource":
        resource = item.resource
        uri = str(resource.uri)
        mime = getattr(resource, "mime_type", None) or ""
        if getattr(resource, "text", None) is not None:
            return [{"type": "text", "text": f"[resource {uri}]\n{resource.text}"}]
        blob = getattr(resource, "blob", None)
        if blob is not None:
            return [
                {"type": "text", "text": f"[resource {uri}]"},
                _binary_block(mime, blob, "resource"),
            ]
    return [{"type": "text", "text": f"[{kind or 'unknown'} content not shown]"}]


def _binary_block(mime: str, data: str, what: str) -> dict[str, Any]:
    if mime in IMAGE_TYPES:
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
    if mime == "application/pdf":
        return {
            "type": "document",
            "source": {"type": "base64", "media_type": mime, "data": data},
        }
    size = len(data) * 3 // 4
    return {
        "type": "text",
        "text": f"[{what} of type {mime or 'unknown'}, {size:,} bytes, not shown]",
    }
