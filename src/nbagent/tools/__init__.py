"""Tools: typed functions the model can call, and the built-in toolsets."""

from .base import CATEGORIES, Category, Tool, ToolError, ToolInputError, tool

__all__ = ["CATEGORIES", "Category", "Tool", "ToolError", "ToolInputError", "tool"]
