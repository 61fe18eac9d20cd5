"""Which `.nbagent/` folder a kernel keeps its conversation in, and for which notebook.

The folder is beside the notebook. The notebook is known, in this order, from:
1. the frontend: the path the labextension registered with (JupyterLab, Notebook 7);
2. `JPY_SESSION_NAME`, which jupyter_server sets for the kernels it starts;
3. the `notebook` option (`NBAgent.notebook`, `NBAGENT_NOTEBOOK`), for papermill and
   nbclient runs, which tell the kernel nothing about its notebook;
4. else nothing: the folder is in the kernel's working directory and holds the
   conversation of that directory (under nbclient, nbconvert and papermill the
   kernel runs in the notebook's directory, so a re-run finds it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .store import FOLDER_NAME


@dataclass(frozen=True)
class RecordLocation:
    folder: Path  # the `.nbagent` directory
    notebook: str | None  # the notebook's file name; None: the directory's conversation
    via: str  # "frontend", "JPY_SESSION_NAME", "setting" or "working directory"


def locate(
    *,
    bridge: Any = None,
    setting: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> RecordLocation:
    """The record location for a kernel (see the module docstring for the order)."""
    cwd = cwd or Path.cwd()
    env = os.environ if env is None else env
    frontend = _frontend_path(bridge)
    for via, path in (
        ("frontend", frontend),
        ("JPY_SESSION_NAME", env.get("JPY_SESSION_NAME")),
        ("setting", setting),
    ):
        if path and path.strip():
            return _beside(path.strip(), cwd, via)
    return RecordLocation(cwd / FOLDER_NAME, None, "working directory")


def workspace_location(workspace: Path) -> RecordLocation:
    """The terminal REPL's records: in its workspace, one conversation per workspace."""
    return RecordLocation(workspace / FOLDER_NAME, None, "workspace")


def _frontend_path(bridge: Any) -> str | None:
    if bridge is None:
        return None
    try:
        client = bridge.choose_client()
    except Exception:  # a bridge being unloaded: no frontend to ask
        return None
    path = getattr(client, "path", None)
    return path if isinstance(path, str) else None


def _beside(path: str, cwd: Path, via: str) -> RecordLocation:
    """The folder beside `path`. A frontend's path is relative to the server's root,
    not to the kernel; the kernel usually runs in the notebook's directory, so a
    path that does not resolve from here is taken as a file in the working directory."""
    candidate = Path(os.path.expanduser(path))
    if not candidate.is_absolute():
        candidate = cwd / candidate
    if not candidate.parent.is_dir() or (via == "frontend" and not candidate.exists()):
        candidate = cwd / candidate.name
    return RecordLocation(candidate.parent / FOLDER_NAME, candidate.name, via)
