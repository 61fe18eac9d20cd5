"""The `@tool` decorator and the `Tool` it makes.

A tool is a typed Python function with a docstring. Its JSON schema and input
validation come from the anthropic SDK's own `beta_tool` (pydantic under the
hood), built lazily so that importing nbagent stays cheap. Each tool declares
whether it only reads (safe to run concurrently with other readers) and which
permission category it needs.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, overload

from ..events import ToolOutput

if TYPE_CHECKING:
    from anthropic.lib.tools import BetaFunctionTool

Category = Literal["read", "write", "execute", "destructive"]
CATEGORIES: tuple[Category, ...] = ("read", "write", "execute", "destructive")

log = logging.getLogger("nbagent.tools")


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
        self.name = name or func.__name__
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


def as_tool_output(result: Any) -> ToolOutput:
    if isinstance(result, ToolOutput):
        return result
    if result is None:
        return ToolOutput("(no output)")
    if isinstance(result, str):
        return ToolOutput(result)
    if isinstance(result, list) and all(isinstance(b, dict) and "type" in b for b in result):
        return ToolOutput(result)
    return ToolOutput(repr(result))


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
