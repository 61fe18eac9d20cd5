"""Run a child process for a tool: own process group, hard timeout, no secrets.

The child gets its own session so that a timeout (or Ctrl-C in the caller)
can kill everything it started, including background grandchildren that would
otherwise keep running inside the Jupyter kernel's process tree.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

# After killing the group, how long to wait for the pipes to close. A descendant
# that started its own session escapes the kill and may hold them open forever.
_DRAIN_SECONDS = 2.0

_SECRET_NAME = re.compile(r"(_API_KEY|_TOKEN|_SECRET)$", re.IGNORECASE)


@dataclass(frozen=True)
class ProcessResult:
    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool
    timeout: float | None = None


def scrubbed_env() -> dict[str, str]:
    """A copy of `os.environ` without API keys, tokens and secrets.

    Model-written commands must not be able to read (and print, or send) the
    user's credentials.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if name.upper() != "ANTHROPIC_API_KEY" and not _SECRET_NAME.search(name)
    }
    # Inside a kernel, ipykernel sets the inline backend, which a child process
    # cannot use (matplotlib would fail to import it): let the child choose.
    if env.get("MPLBACKEND", "").startswith("module://matplotlib_inline"):
        del env["MPLBACKEND"]
    return env


def run_process(
    command: str | list[str],
    *,
    cwd: Path,
    timeout: float,
    shell: bool,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> ProcessResult:
    """Run `command` to completion or until `timeout` seconds, then kill its process group.

    `env` defaults to `scrubbed_env()`. Without `stdin` the child reads from
    /dev/null, so a command that waits for input fails fast instead of hanging.
    """
    with subprocess.Popen(
        command,
        cwd=cwd,
        shell=shell,
        env=scrubbed_env() if env is None else env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as proc:
        data = stdin.encode("utf-8") if stdin is not None else None
        timed_out = False
        try:
            out, err = proc.communicate(data, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            try:
                out, err = proc.communicate(timeout=_DRAIN_SECONDS)
            except subprocess.TimeoutExpired as exc:
                out, err = exc.output or b"", exc.stderr or b""
        except BaseException:  # KeyboardInterrupt above all
            _kill_group(proc)
            raise
        # Popen.__exit__ waits for the (killed) child, so the returncode is set.
    return ProcessResult(
        stdout=_decode(out),
        stderr=_decode(err),
        exit_code=proc.returncode,
        timed_out=timed_out,
        timeout=timeout,
    )


def format_process_result(r: ProcessResult, *, max_chars: int = 50_000) -> str:
    """The text a tool returns for `r`: status line, then stdout and stderr sections.

    Each section is clipped to `max_chars` (keeping its head and tail) so one
    noisy command cannot flood the model's context.
    """
    if r.timed_out:
        after = f" after {r.timeout:g}s" if r.timeout is not None else ""
        parts = [f"timed out{after}; the process group was killed"]
    else:
        parts = [f"exit code: {r.exit_code}{_signal_note(r.exit_code)}"]
    if r.stdout:
        parts.append("--- stdout ---\n" + _clip(r.stdout, max_chars))
    if r.stderr:
        parts.append("--- stderr ---\n" + _clip(r.stderr, max_chars))
    if not r.stdout and not r.stderr:
        parts.append("(no output)")
    return "\n".join(parts)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if os.name != "posix":
        with contextlib.suppress(OSError):
            proc.kill()
        return
    # start_new_session makes the child the leader: its pid is the group id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _decode(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")


def _signal_note(code: int | None) -> str:
    if code is None or code >= 0:
        return ""
    try:
        return f" (killed by signal {signal.Signals(-code).name})"
    except ValueError:
        return f" (killed by signal {-code})"


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text.rstrip("\n")
    head, tail = text[: limit // 2], text[-(limit // 2) :]
    omitted = len(text) - len(head) - len(tail)
    return f"{head}\n[... {omitted} characters omitted ...]\n{tail}".rstrip("\n")
