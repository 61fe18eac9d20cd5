"""The live-namespace tools moved to `nbagent.jupyter.live`; kept for the session's import.

Remove once `jupyter/session.py` imports from `.live`.
"""

from __future__ import annotations

from .live import DisplayCallback, live_runner, live_tools, strip_ansi

__all__ = ["DisplayCallback", "live_runner", "live_tools", "strip_ansi"]
