"""What "headless" means, once, for every surface and option that depends on it.

A run is headless when nobody can answer: the kernel allows no stdin (the request
being executed said `allow_stdin: false`, as nbconvert, papermill and nbclient send)
and no nbagent frontend (the labextension) has registered with the kernel. The
JupyterLab sidebar also runs its turns with stdin off, but it has a frontend, so
its turns are not headless. Terminal IPython has no kernel and a person at the
keyboard: not headless.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..pump import PumpResult

# Stop reasons of a turn that did not do what the cell asked: an API or configuration
# error (a missing key), a budget reached, a replayed turn that no longer matches, or
# another turn holding the session.
FAILED_STOP_REASONS = frozenset({"error", "budget", "replay_mismatch", "busy"})


def is_headless(shell: Any) -> bool:
    """True when the cell being run has no stdin and no nbagent frontend is registered."""
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return False
    return not stdin_allowed(kernel) and not frontend_registered(kernel)


def stdin_allowed(kernel: Any) -> bool:
    """Whether the request the kernel is running may ask the user for input."""
    try:
        parent = kernel.get_parent("shell")
    except Exception:  # an older or a stand-in kernel: fall back to its flag
        parent = None
    content = parent.get("content") if isinstance(parent, dict) else None
    if isinstance(content, dict) and "allow_stdin" in content:
        return bool(content["allow_stdin"])
    return bool(getattr(kernel, "_allow_stdin", False))


def frontend_registered(kernel: Any) -> bool:
    """Whether an nbagent frontend (the labextension) has registered with this kernel."""
    try:
        from ..transport.bridge import get_bridge

        bridge = get_bridge(kernel)
    except Exception:  # no comm support: no frontend can register
        return False
    return bridge is not None and bool(bridge.clients)


def should_raise(policy: str, shell: Any) -> bool:
    """Whether a failed `%%agent` cell raises under `raise_on_error` = `policy`."""
    if policy == "always":
        return True
    if policy == "never":
        return False
    return is_headless(shell)


def turn_failure(result: PumpResult) -> str | None:
    """Why a turn failed, in one line, or None when it did not."""
    if result.error is None and result.stop_reason not in FAILED_STOP_REASONS:
        return None
    message = result.end.message if result.end is not None else ""
    if not message and result.error is not None:
        message = str(result.error)
    return message.strip() or f"the turn stopped ({result.stop_reason or 'error'})"
