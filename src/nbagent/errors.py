"""Errors users can fix, with messages that say how."""


class NBAgentError(Exception):
    """Base class for nbagent's own errors."""


class ConfigError(NBAgentError):
    """A setting is missing or invalid; the message says what to set."""


class AgentBusyError(NBAgentError):
    """A turn is already running in this session."""


class NoPendingTurnError(NBAgentError):
    """resume() or submit_tool_results() was called with nothing waiting."""


class AgentCellError(NBAgentError):
    """A `%%agent` cell ended in an error, raised so headless runs (nbconvert, papermill)
    fail; `NBAgent.raise_on_error` decides when. Shown as one line, not a traceback:
    the cell's output above it already says what happened."""

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [f"{type(self).__name__}: {self}"]


class ReplayMismatchError(NBAgentError):
    """A replayed turn's tool result no longer matches its recording (nbagent.record):
    the notebook's data or code changed, so the recorded answers may not hold."""
