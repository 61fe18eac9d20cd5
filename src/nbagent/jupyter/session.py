"""The kernel's one agent session, shared by %%agent cells, the panel and the sidebar."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..events import Event, Notice, ToolCall, TurnEnd

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ..agent import Agent
    from .settings import NBAgent

KERNEL_CONTEXT = """\
You are running inside the user's live Jupyter kernel. Use run_python to run code in \
the user's namespace: variables you define persist for the user, and figures you plot \
are shown to you as images and to the user in the output. Use list_variables and \
inspect_variable to look at the user's data before changing it. When the kernel is \
attached to a notebook, the notebook tools read and edit its cells; edit cells only \
when asked to change the notebook."""

_sessions: dict[int, KernelSession] = {}


def get_session(shell: InteractiveShell, settings: NBAgent | None = None) -> KernelSession:
    session = _sessions.get(id(shell))
    if session is None:
        if settings is None:
            from .settings import NBAgent

            settings = NBAgent(parent=shell)
        session = _sessions[id(shell)] = KernelSession(shell, settings)
    return session


def drop_session(shell: InteractiveShell) -> None:
    _sessions.pop(id(shell), None)


class KernelSession:
    def __init__(self, shell: InteractiveShell, settings: NBAgent) -> None:
        self.shell = shell
        self.settings = settings
        self._agent: Agent | None = None
        # Where rich outputs of run_python go: the surface running the current turn.
        self.on_display: Callable[[list[dict[str, Any]]], None] | None = None

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            self._agent = self._make_agent()
        return self._agent

    def reset(self) -> None:
        if self._agent is not None:
            self._agent.reset()

    def _make_agent(self) -> Agent:
        from ..agent import Agent
        from ..config import load_settings, resolve_system_prompt
        from ..tools.builtin import builtin_tools
        from ..tools.workspace import Workspace
        from .live_tools import live_runner, live_tools

        s = self.settings
        cwd = Path.cwd()
        workspace = Workspace(s.workspace)
        agent = Agent(
            model=s.model,
            system=self._system_prompt(
                resolve_system_prompt(s.system_prompt, load_settings(cwd), cwd)
            ),
            tools=[],
            workspace=workspace.root,
            max_turns=s.max_turns,
            permission_mode=s.permission_mode,
            thinking=s.thinking,  # type: ignore[arg-type]
            effort=s.effort,
            max_tokens=s.max_tokens,
            max_retries=s.max_retries,
            max_tool_output_chars=s.max_tool_output_chars,
            shell_timeout=s.shell_timeout,
        )
        tools = [
            t
            for t in builtin_tools(
                agent.workspace, agent._notices.append, shell_timeout=s.shell_timeout
            )
            # run_python replaces the subprocess runner: the user's namespace is the point.
            if t.name != "execute_python_code"
        ]
        tools += live_tools(self.shell, on_display=self._display_outputs)
        # run_cell stores the cell's real outputs, not run_python's labelled text.
        tools += self._notebook_tools(live_runner(self.shell, on_display=self._display_outputs))
        agent.add_tools(tools)
        return agent

    def _system_prompt(self, base: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
        blocks = [{"type": "text", "text": base}] if isinstance(base, str) else list(base)
        return [*blocks, {"type": "text", "text": KERNEL_CONTEXT}]

    def _notebook_tools(self, run_code: Callable[[str], Any]) -> list[Any]:
        from ..notebook.locate import current_document
        from ..notebook.tools import notebook_tools

        def document() -> Any:
            bridge = None
            kernel = getattr(self.shell, "kernel", None)
            if kernel is not None:
                from ..transport.bridge import get_bridge

                bridge = get_bridge(kernel)
            return current_document(bridge, self.shell.user_ns)

        return notebook_tools(document, run_code=run_code)

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
    ) -> Generator[Event, None, None]:
        """Events of a new turn (or of resuming a suspended one with `decision`).

        Per-turn overrides (model, max_turns, permission_mode) are restored after.
        The event stream is always closed, so an interrupt that lands in a
        renderer still leaves the conversation valid.
        """
        agent = self.agent
        saved = {k: getattr(agent, k) for k in (overrides or {})}
        saved_approve = agent.approve
        try:
            for key, value in (overrides or {}).items():
                setattr(agent, key, value)
            agent.approve = approve
            if decision is not None:
                stream = agent.stream_resume(decision)
            elif prompt:
                stream = agent.stream(prompt)
            else:
                return
            with contextlib.closing(stream):
                try:
                    yield from stream
                except KeyboardInterrupt:
                    stream.close()
                    yield TurnEnd("interrupted", "Interrupted by the user.")
        finally:
            for key, value in saved.items():
                setattr(agent, key, value)
            agent.approve = saved_approve


def headless_notice(tool: str, decision: str) -> Notice:
    verb = "Allowed" if decision == "allow" else "Denied"
    return Notice(
        f"{verb} {tool}: no stdin here (headless run), so NBAgent.headless_approval='{decision}' decided.",
        "warning",
    )
