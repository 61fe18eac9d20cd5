"""The live-namespace tools and their parts, one job each.

- `tools`: `run_python`, `list_variables`, `inspect_variable` and `live_runner`;
- `capture`: what a run prints, displays and raises, without touching the outer cell;
- `output`: a captured run as content blocks for the model and outputs for a notebook;
- `describe`: a value described for the model (DataFrame, array, mapping, object...);
- `namespace`: which names of the user's namespace are the user's variables.
"""

from __future__ import annotations

from .output import strip_ansi
from .tools import DisplayCallback, live_runner, live_tools

__all__ = ["DisplayCallback", "live_runner", "live_tools", "strip_ansi"]
