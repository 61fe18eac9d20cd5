"""The kernel's one agent session, shared by %%agent cells, the panel and the sidebar."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..events import Event, Notice, ToolCall

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ..agent import Agent
    from ..config import Settings
    from ..notebook.document import NotebookDocument
    from ..undo import Recorder, UndoReport
    from .settings import NBAgent

KERNEL_CONTEXT = """\
You are running inside the user's live Jupyter kernel. Use run_python to run code in \
the user's namespace: variables you define persist for the user, and figures you plot \
are shown to you as images and to the user in the output. Use list_variables and \
inspect_variable to look at the user's data before changing it. When the kernel is \
attached to a notebook, the notebook tools read and edit its cells; edit cells only \
when asked to change the notebook."""

_sessions: dict[int, KernelSession] = {}


def get_session(shell: InteractiveShell, config: NBAgent | None = None) -> KernelSession:
    session = _sessions.get(id(shell))
    if session is None:
        if config is None:
            from .settings import NBAgent

            # The configurable %load_ext registered, so %config reaches this session.
            found = [c for c in getattr(shell, "configurables", []) if isinstance(c, NBAgent)]
            config = found[0] if found else NBAgent(parent=shell)
        session = _sessions[id(shell)] = KernelSession(shell, config)
    return session


def drop_session(shell: InteractiveShell) -> None:
    """Forget the shell's session (`%unload_ext`): its MCP servers stop."""
    session = _sessions.pop(id(shell), None)
    if session is not None:
        session.close()


class KernelSession:
    """The kernel's agent, with the live-namespace and notebook tools and the kernel's
    `NBAgent` configuration as a settings source read at every turn."""

    def __init__(self, shell: InteractiveShell, config: NBAgent) -> None:
        self.shell = shell
        self.config = config
        self._agent: Agent | None = None
        # Where rich outputs of run_python go: the surface running the current turn.
        self.on_display: Callable[[list[dict[str, Any]]], None] | None = None
        # undo (issue 12): one record of every turn's changes for the kernel's life;
        # `reset()` starts a new conversation but keeps it.
        self._recorder: Recorder | None = None

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            self._agent = self._make_agent()
        return self._agent

    @property
    def settings(self) -> Settings:
        """The settings the next turn will use (IPython config, environment, `.env`)."""
        return self.agent.current_settings()

    def reset(self) -> None:
        """Start a new conversation; a running turn (the panel's) is stopped first."""
        if self._agent is not None:
            self._agent.reset()

    def close(self) -> None:
        """`%unload_ext`: the session's MCP servers stop (kernel exit stops them too)."""
        if self._agent is not None:
            self._agent.session.close()

    # -- undo (issue 12) ------------------------------------------------------

    @property
    def recorder(self) -> Recorder:
        if self._recorder is None:
            from ..undo import Recorder

            self._recorder = Recorder()
        return self._recorder

    def changes_text(self) -> str:
        """`%agent changes`: the last turn's changes (not undone) as a diff."""
        return self.recorder.changes_text()

    def undo(self) -> UndoReport:
        """`%agent undo`: revert the last turn not yet undone (cells through the notebook
        as it is open now, with the hash check), and tell the model what was reverted."""
        reports = self._undo(lambda: [self.recorder.undo(resolve_document=self._document_for)])
        return reports[0]

    def undo_through(self, turn: int) -> list[UndoReport]:
        """Undo turns, newest first, through turn `turn` (the sidebar's Revert)."""
        return self._undo(
            lambda: self.recorder.undo_through(turn, resolve_document=self._document_for)
        )

    def turn_summaries(self) -> list[dict[str, Any]]:
        """Each turn that changed something, newest first, with its diff (the sidebar)."""
        return self.recorder.turn_summaries()

    def _undo(self, revert: Callable[[], list[UndoReport]]) -> list[UndoReport]:
        from ..errors import AgentBusyError

        session = self.agent.session
        if session.busy:
            raise AgentBusyError("a turn is running; stop it before undoing")
        reports = revert()
        note = "\n".join(r.note() for r in reports if r.note())
        session.add_note(note)
        return reports

    def _document_for(self, path: str) -> NotebookDocument | None:
        """The notebook open now for a recorded change's `path` (a reloaded page has a
        new frontend client); None: the document the change was made through."""
        doc = self._document()
        return doc if doc is not None and doc.path == path else None

    def _make_agent(self) -> Agent:
        from ..agent import Agent
        from .settings import configured

        agent = Agent(
            toolset=self._toolset,
            system_suffix=KERNEL_CONTEXT,
            config_source=lambda: configured(self.config),
        )
        agent.session.recorder = self.recorder  # undo (issue 12): each turn opens a record
        from .conversation import attach_conversation

        attach_conversation(self, agent)  # saved after each turn; restore; replay
        return agent

    def _toolset(
        self, settings: Settings, workspace: Any, emit: Callable[[Notice], None]
    ) -> list[Any]:
        from ..tools.builtin import tools_for
        from .live import live_runner, live_tools

        recorder = self.recorder  # undo (issue 12): the tools report their changes
        tools = [
            t
            for t in tools_for(settings, workspace, emit, recorder=recorder)
            # run_python replaces the subprocess runner: the user's namespace is the point.
            if t.name != "execute_python_code"
        ]
        tools += live_tools(self.shell, on_display=self._display_outputs, recorder=recorder)
        # run_cell stores the cell's real outputs, not run_python's labelled text.
        runner = live_runner(self.shell, on_display=self._display_outputs, recorder=recorder)
        tools += self._notebook_tools(runner)
        return tools

    def _notebook_tools(self, run_code: Callable[[str], Any]) -> list[Any]:
        from ..notebook.tools import notebook_tools

        return notebook_tools(self._document, run_code=run_code, recorder=self.recorder)

    def _document(self) -> NotebookDocument | None:
        from ..notebook.locate import current_document

        bridge = None
        kernel = getattr(self.shell, "kernel", None)
        if kernel is not None:
            from ..transport.bridge import get_bridge

            bridge = get_bridge(kernel)
        return current_document(bridge, self.shell.user_ns)

    def _display_outputs(self, bundles: list[dict[str, Any]]) -> None:
        if self.on_display is not None and bundles:
            self.on_display(bundles)

    # -- running a turn -----------------------------------------------------

    def stream_turn(
        self,
        prompt: str | None,
        *,
        decision: str | None = None,
        overrides: dict[str, Any] | None = None,
        approve: Callable[[ToolCall], str] | None = None,
        may_start: Callable[[str], bool] | None = None,
    ) -> Iterator[Event]:
        """Events of a new turn (or of resuming a suspended one with `decision`).

        Per-turn overrides (model, max_turns, permission_mode, ...) are values for
        this turn only; nothing shared is changed. `may_start(summary)` asks whether
        an MCP server that needs the user's permission may start (mcp, issue 12).
        """
        agent = self.agent
        if decision is not None:
            return agent.stream_resume(decision, approve=approve)
        if prompt:
            return agent.session.stream(
                prompt, approve=approve, overrides=overrides or {}, may_start=may_start
            )
        return iter(())


def headless_notice(tool: str, decision: str) -> Notice:
    verb = "Allowed" if decision == "allow" else "Denied"
    return Notice(
        f"{verb} {tool}: no stdin here (headless run), so NBAgent.headless_approval='{decision}' decided.",
        "warning",
    )
