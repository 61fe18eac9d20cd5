"""Which notebook is this kernel attached to?

1. A labextension client registered on the bridge that can answer while the
   kernel is busy: the live notebook (`LiveNotebook`), edited in the frontend.
2. Else the file the kernel was started for (`JPY_SESSION_NAME`, `__session__`,
   `__vsc_ipynb_file__`): read-only `FileNotebook(open_in_frontend=True)`,
   since writing a notebook open in an editor loses someone's edits.
3. Else None: the tools answer that the kernel is not attached to a notebook.

For a notebook that is not open anywhere (headless runs), use
`FileNotebook(path)` directly.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .document import NotebookDocument
from .file_backend import FileNotebook
from .live_backend import LiveNotebook

if TYPE_CHECKING:
    from ..transport.bridge import Bridge


def current_document(
    bridge: Bridge | None, user_ns: dict[str, Any] | None = None
) -> NotebookDocument | None:
    """The notebook this kernel belongs to, live if possible (see the module docstring).

    `user_ns` is the user namespace to look for `__session__` / `__vsc_ipynb_file__`
    in (default: the running IPython shell's).
    """
    if bridge is not None:
        client = bridge.choose_client()
        if client is not None and client.answers_while_busy:
            return LiveNotebook(bridge, client.client_id, client.path or "(untitled notebook)")
        if client is not None and client.path:
            # JupyterLab's path is relative to the server root; the kernel usually
            # runs in the notebook's directory.
            path = _resolve(client.path) or _resolve(os.path.basename(client.path))
            if path:
                return FileNotebook(path, open_in_frontend=True)
    path = notebook_path(user_ns)
    if path is None:
        return None
    return FileNotebook(path, open_in_frontend=True)


def notebook_path(user_ns: dict[str, Any] | None = None) -> str | None:
    """The `.ipynb` file this kernel was started for, if it exists on disk."""
    if user_ns is None:
        user_ns = _user_ns()
    candidates = [
        os.environ.get("JPY_SESSION_NAME"),
        user_ns.get("__session__"),
        user_ns.get("__vsc_ipynb_file__"),
    ]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.endswith(".ipynb"):
            path = _resolve(candidate)
            if path:
                return path
    return None


def _resolve(path: str) -> str | None:
    """An existing file for `path` (absolute, or relative to the kernel's directory)."""
    expanded = os.path.expanduser(path)
    return expanded if os.path.isfile(expanded) else None


def _user_ns() -> dict[str, Any]:
    try:
        from IPython import get_ipython
    except ImportError:
        return {}
    shell = get_ipython()
    return getattr(shell, "user_ns", {}) if shell is not None else {}
