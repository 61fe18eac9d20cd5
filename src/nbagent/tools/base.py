"""The `@tool` decorator and the `Tool` it makes.

A tool is a typed Python function with a docstring. Its JSON schema and input
validation come from the anthropic SDK's own `beta_tool` (pydantic under the
hood), built lazily so that importing nbagent stays cheap. Each tool declares
whether it only reads (safe to run concurrently with other readers) and which
permission category it needs. A tool can also be made from a name, a description,
a JSON schema and a callable (`Tool.from_schema`), as the seeds' connectors do.
Names follow the API's rule; what a tool returns reaches the model as text, with
dicts and lists as JSON.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, overload

from ..events import ToolOutput

if TYPE_CHECKING:
    from anthropic.lib.tools import BetaFunctionTool

Category = Literal["read", "write", "execute", "destructive"]
CATEGORIES: tuple[Category, ...] = ("read", "write", "execute", "destructive")

log = logging.getLogger("nbagent.tools")

# The Messages API's rule for tool names (OpenAI's is the same, up to 64 characters).
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


def check_tool_name(name: str) -> str:
    """`name` if the API accepts it as a tool name, else a ValueError that says why."""
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise ValueError(
            f"invalid tool name {name!r}: use 1 to 128 letters, digits, '_' or '-' "
            "(the API's rule ^[a-zA-Z0-9_-]{1,128}$)"
        )
    return name


class ToolError(Exception):
    """Raise from a tool to send the model a clear error (no traceback)."""


class ToolInputError(ToolError):
    """The model's input does not fit the tool's schema."""


class Tool:
    """A function the model can call, with its schema and permission flags."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        read_only: bool = False,
        category: Category | None = None,
        summarize: Callable[[dict[str, Any]], str] | None = None,
        main_thread: bool = False,
    ) -> None:
        if category is not None and category not in CATEGORIES:
            raise ValueError(f"category must be one of {CATEGORIES}, got {category!r}")
        self.func = func
        self.name = check_tool_name(name or func.__name__)
        self.read_only = read_only
        self.category: Category = category or ("read" if read_only else "execute")
        self._description = description
        self.summarize = summarize
        # Touches the IPython shell (user namespace, display): must run on the
        # kernel's main thread even when the loop runs in a worker thread.
        self.main_thread = main_thread
        _check_docstring(func, self.name)

    def __repr__(self) -> str:
        return f"<Tool {self.name} category={self.category}>"

    @classmethod
    def from_schema(
        cls,
        name: str,
        description: str,
        input_schema: dict[str, Any],
        function: Callable[..., Any],
        *,
        read_only: bool = False,
        category: Category | None = None,
        main_thread: bool = False,
    ) -> Tool:
        """A tool from a raw JSON schema and a callable (seed 003's `Tool`, seed 004's
        tool definitions).

        `function` gets the input as keyword arguments when its parameters are the
        schema's properties (`def get_weather(location, unit="celsius")`), else the
        whole input dict as its one argument (`def handler(input)`). The input is
        checked against the schema's required properties, property types and enums
        before the call; a mismatch is an error result the model can read.
        """
        return SchemaTool(
            name,
            description,
            input_schema,
            function,
            read_only=read_only,
            category=category,
            main_thread=main_thread,
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    @cached_property
    def _sdk_tool(self) -> BetaFunctionTool[Any]:
        from anthropic.lib.tools import BetaFunctionTool

        return BetaFunctionTool(self.func, name=self.name, description=self._description)

    @cached_property
    def _validated(self) -> Callable[..., Any]:
        import pydantic

        return pydantic.validate_call(self.func)

    @property
    def description(self) -> str:
        return self._sdk_tool.description

    def to_param(self) -> dict[str, Any]:
        """The tool definition sent in the request's `tools` list."""
        return dict(self._sdk_tool.to_dict())

    def call(self, input: object) -> ToolOutput:
        """Validate `input` against the schema, run the function, wrap the result.

        Exceptions propagate; the loop turns them into `is_error` results.
        """
        import pydantic

        if not isinstance(input, dict):
            raise ToolInputError(f"input must be a JSON object, got {type(input).__name__}")
        try:
            result = self._validated(**input)
        except pydantic.ValidationError as exc:
            raise ToolInputError(_describe_validation_error(self.name, exc)) from None
        return as_tool_output(result)


class SchemaTool(Tool):
    """A tool defined by a JSON schema rather than a function signature."""

    def __init__(
        self,
        name: str,
        description: str,
        input_schema: dict[str, Any],
        function: Callable[..., Any],
        *,
        read_only: bool = False,
        category: Category | None = None,
        main_thread: bool = False,
    ) -> None:
        if category is not None and category not in CATEGORIES:
            raise ValueError(f"category must be one of {CATEGORIES}, got {category!r}")
        if not callable(function):
            raise TypeError(f"tool {name!r}: function must be callable")
        if not isinstance(input_schema, dict) or input_schema.get("type", "object") != "object":
            raise ValueError(f"tool {name!r}: input_schema must be a JSON schema of type object")
        if not description or not description.strip():
            raise ValueError(f"tool {name!r} needs a description: the model reads it")
        self.func = function
        self.name = check_tool_name(name)
        self.read_only = read_only
        self.category = category or ("read" if read_only else "execute")
        self._description = description
        self.summarize = None
        self.main_thread = main_thread
        self.input_schema = {"type": "object", **input_schema}
        self._keywords = _takes_keywords(function, self.input_schema)

    @property
    def description(self) -> str:
        return self._description or ""

    def to_param(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
        }

    def call(self, input: object) -> ToolOutput:
        if not isinstance(input, dict):
            raise ToolInputError(f"input must be a JSON object, got {type(input).__name__}")
        problems = schema_problems(self.input_schema, input)
        if problems:
            raise ToolInputError(f"Invalid input for tool {self.name}: " + "; ".join(problems))
        result = self.func(**input) if self._keywords else self.func(input)
        return as_tool_output(result)


def _takes_keywords(function: Callable[..., Any], schema: dict[str, Any]) -> bool:
    """Whether `function`'s parameters are the schema's properties (else it takes the dict)."""
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: give it the dict
        return False
    properties = set(schema.get("properties") or {})
    named = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params)
    if not properties:
        return takes_any or not named
    return takes_any or properties <= named


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def schema_problems(schema: dict[str, Any], value: dict[str, Any]) -> list[str]:
    """What is wrong with `value` for an object `schema`: missing required properties,
    unexpected ones (when additionalProperties is false), wrong types and values outside
    an enum, one level deep. Enough to give the model a clear error; the tool still
    checks what it needs."""
    problems: list[str] = []
    properties: dict[str, Any] = schema.get("properties") or {}
    for name in schema.get("required") or []:
        if name not in value:
            problems.append(f"missing required argument '{name}'")
    if schema.get("additionalProperties") is False:
        problems += [f"unexpected argument '{k}'" for k in value if k not in properties]
    for key, item in value.items():
        spec = properties.get(key)
        if not isinstance(spec, dict):
            continue
        types = spec.get("type")
        names = [types] if isinstance(types, str) else list(types or [])
        if names and not any(_is_json_type(item, t) for t in names):
            problems.append(f"'{key}': expected {' or '.join(names)} (got {item!r})")
        elif "enum" in spec and item not in spec["enum"]:
            allowed = ", ".join(repr(v) for v in spec["enum"])
            problems.append(f"'{key}': must be one of {allowed} (got {item!r})")
    return problems


def _is_json_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False  # JSON true is not a number
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES.get(name, (object,)))


# Lists of these blocks are content (text with images); any other list is data.
CONTENT_BLOCK_TYPES = frozenset({"text", "image", "document", "search_result"})


def as_tool_output(result: Any) -> ToolOutput:
    """What a tool returned, as the model will see it: text, content blocks, or, for
    structured results (dicts, lists, tuples), JSON."""
    if isinstance(result, ToolOutput):
        return result
    if result is None:
        return ToolOutput("(no output)")
    if isinstance(result, str):
        return ToolOutput(result)
    if (
        isinstance(result, list)
        and result
        and all(isinstance(b, dict) and b.get("type") in CONTENT_BLOCK_TYPES for b in result)
    ):
        return ToolOutput(result)
    if isinstance(result, (dict, list, tuple)):
        try:
            return ToolOutput(json.dumps(result, ensure_ascii=False, default=_json_default))
        except (TypeError, ValueError):  # circular, or keys JSON cannot take
            return ToolOutput(repr(result))
    return ToolOutput(repr(result))


def _json_default(value: Any) -> Any:
    """Values JSON has no type for: sets as lists, everything else as its str()."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return str(value)


def _describe_validation_error(name: str, exc: Any) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "input"
        if err.get("type") == "unexpected_keyword_argument":
            problems.append(f"unexpected argument '{where}'")
        elif err.get("type") == "missing_argument":
            problems.append(f"missing required argument '{where}'")
        else:
            problems.append(f"'{where}': {err.get('msg')} (got {err.get('input')!r})")
    return f"Invalid input for tool {name}: " + "; ".join(problems)


def _check_docstring(func: Callable[..., Any], name: str) -> None:
    """Refuse a tool whose docstring leaves the model guessing (smolagents' rule)."""
    doc = inspect.getdoc(func)
    if not doc:
        raise ValueError(
            f"tool {name!r} needs a docstring: the model reads it to decide when to call it"
        )
    import docstring_parser

    described = {p.arg_name for p in docstring_parser.parse(doc).params if p.description}
    params = [
        p
        for p in inspect.signature(func).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    missing = [p.name for p in params if p.name not in described]
    if missing:
        raise ValueError(
            f"tool {name!r}: describe each argument in the docstring's Args section "
            f"(missing: {', '.join(missing)})"
        )


@overload
def tool(func: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    read_only: bool = False,
    category: Category | None = None,
    main_thread: bool = False,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    read_only: bool = False,
    category: Category | None = None,
    main_thread: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a tool; works as `@tool` or `@tool(read_only=True, ...)`.

    Args:
        func: the function (when used without parentheses).
        name: the name the model sees (default: the function's name).
        description: overrides the docstring's summary.
        read_only: the tool only reads, so it may run concurrently with other readers.
        category: permission category: read, write, execute or destructive
            (default: read if read_only, else execute).
        main_thread: the tool must run on the kernel's main thread (IPython state).
    """

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool(
            f,
            name=name,
            description=description,
            read_only=read_only,
            category=category,
            main_thread=main_thread,
        )

    if func is not None:
        return wrap(func)
    return wrap


def log_call(name: str, arguments: dict[str, Any]) -> None:
    """Log a call in the seed's shape: `[TOOL][name] key=value ...`."""
    if not log.isEnabledFor(logging.INFO):
        return
    parts = [f"{k}={_shorten(v)}" for k, v in arguments.items()]
    log.info("[TOOL][%s] %s", name, " ".join(parts))


def _shorten(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."
