"""`%load_ext nbagent` / `%unload_ext nbagent`.

Loading registers the magics and the `NBAgent` configurable, and opens the
frontend bridge when running in a kernel. It imports nothing heavy: in a kernel,
the SDK, pydantic and the tools are warmed up afterwards, in small steps while the
kernel is idle (`warmup`); elsewhere they load on the first turn.
"""

from __future__ import annotations

from typing import Any

_state: dict[int, dict[str, Any]] = {}


def load(shell: Any) -> None:
    if id(shell) in _state:
        return
    from .magics import AgentMagics
    from .question_mark import keep_question_marks
    from .settings import NBAgent

    settings = NBAgent(parent=shell)
    shell.configurables.append(settings)
    magics = AgentMagics(shell, settings)
    shell.register_magics(magics)
    cleanup = getattr(shell, "input_transformers_cleanup", None)
    if cleanup is not None and keep_question_marks not in cleanup:
        cleanup.append(keep_question_marks)
    bridge = None
    if getattr(shell, "kernel", None) is not None:
        try:
            from .bridge import get_bridge  # loads the frontend entry points too
        except ImportError:
            get_bridge = None  # type: ignore[assignment]
        if get_bridge is not None:
            bridge = get_bridge(shell.kernel)
        if bridge is not None:
            from .sidebar import install

            install(shell, bridge)
    _state[id(shell)] = {"settings": settings, "magics": magics, "bridge": bridge}
    from . import warmup

    warmup.start(shell)  # nothing runs before this cell has replied


def unload(shell: Any) -> None:
    state = _state.pop(id(shell), None)
    if state is None:
        return
    from . import warmup

    warmup.stop(shell)
    registry = shell.magics_manager.magics
    registry["cell"].pop("agent", None)
    registry["line"].pop("agent", None)
    magics = state["magics"]
    shell.magics_manager.registry.pop(type(magics).__name__, None)
    from .question_mark import keep_question_marks

    cleanup = getattr(shell, "input_transformers_cleanup", None)
    if cleanup is not None and keep_question_marks in cleanup:
        cleanup.remove(keep_question_marks)
    if state["settings"] in shell.configurables:
        shell.configurables.remove(state["settings"])
    if state["bridge"] is not None:
        state["bridge"].unload()
    from .session import drop_session

    drop_session(shell)
