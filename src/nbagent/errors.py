"""Errors users can fix, with messages that say how."""


class NBAgentError(Exception):
    """Base class for nbagent's own errors."""


class ConfigError(NBAgentError):
    """A setting is missing or invalid; the message says what to set."""


class AgentBusyError(NBAgentError):
    """A turn is already running in this session."""


class NoPendingTurnError(NBAgentError):
    """resume() or submit_tool_results() was called with nothing waiting."""
