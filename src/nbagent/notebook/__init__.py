"""Notebook documents the agent reads and edits by cell id: live (through the
labextension) or a file (nbformat), and the notebook toolset."""

from .document import CellInfo, NotebookConflict, NotebookDocument, source_hash
from .file_backend import FileNotebook
from .live_backend import LiveNotebook
from .locate import current_document
from .tools import notebook_tools

__all__ = [
    "CellInfo",
    "FileNotebook",
    "LiveNotebook",
    "NotebookConflict",
    "NotebookDocument",
    "current_document",
    "notebook_tools",
    "source_hash",
]
