"""Review and undo of what each turn changed: cells, files and the user's variables.

`Recorder` keeps the records (one per turn, for the kernel's lifetime); the notebook
tools, the file tools and `run_python` call its hooks; `%agent changes` shows
`Recorder.changes_text()` and `%agent undo` runs `Recorder.undo()`.
"""

from .changes import TurnRecord
from .records import Recorder, location_path
from .revert import UndoReport

__all__ = ["Recorder", "TurnRecord", "UndoReport", "location_path"]
