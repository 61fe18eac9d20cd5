"""Run a child process for a tool: no secrets, bounded output, nothing left behind.

Each call starts a small wrapper process (`reaper.py`), inside the OS sandbox
(`sandbox.py`) when there is one. The wrapper runs the command, keeps only the
head and tail of its output, and kills everything the command started once the
command ends or times out; it reports back as one bounded Python literal, so the
kernel never holds more than a few times `max_output_chars` whatever the command
prints.
"""

from __future__ import annotations

import ast
import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..redact import is_secret_name, url_passwords
from . import reaper
from . import sandbox as bwrap_sandbox
from .sandbox import SandboxSetting, SandboxUnavailable

__all__ = [
    "Omission",
    "ProcessResult",
    "SandboxSetting",
    "SandboxUnavailable",
    "format_process_result",
    "run_process",
    "scrubbed_env",
]

# The wrapper enforces the timeout; this is the caller's own limit on top, in
# case the wrapper itself hangs (it should not).
_BACKSTOP_SECONDS = 10.0
# After SIGTERM, how long the wrapper gets to kill the tree before we kill its group.
_STOP_SECONDS = 2.0


@dataclass(frozen=True)
class Omission:
    """Output dropped from the middle of a stream: at offset `at` of the kept text."""

    at: int
    chars: int
    lines: int


@dataclass(frozen=True)
class ProcessResult:
    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool
    timeout: float | None = None
    stdout_omitted: Omission | None = None
    stderr_omitted: Omission | None = None
    # Processes the command started that were still running when it ended (or,
    # after a timeout, besides the command itself), and were killed.
    killed: int = 0


def scrubbed_env() -> dict[str, str]:
    """A copy of `os.environ` without anything that looks like a credential.

    Model-written commands must not be able to read (and print, or send) the
    user's credentials: every variable with a secret-looking name goes, and so
    does any whose value holds a URL with a password (DATABASE_URL=postgres://u:pw@h/db).
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not is_secret_name(name) and not url_passwords(value)
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
    workspace: Path | None = None,
    max_output_chars: int = 50_000,
    sandbox: SandboxSetting = "auto",
    network: bool = True,
) -> ProcessResult:
    """Run `command` to completion or until `timeout` seconds; then kill all it started.

    `env` defaults to `scrubbed_env()`. Without `stdin` the child reads from
    /dev/null, so a command that waits for input fails fast instead of hanging.
    Each of stdout and stderr keeps its first and last `max_output_chars // 2`
    characters. `sandbox` is True (required), False (off) or "auto" (used
    where bwrap works); the sandbox makes `workspace` (default `cwd`) writable.
    Raises `SandboxUnavailable` when the settings need a sandbox this machine lacks.
    """
    # The same argv Popen would build for `shell` and `command`.
    argv = [command] if isinstance(command, str) else list(command)
    if shell:
        argv = ["/bin/sh", "-c", *argv]
    env = scrubbed_env() if env is None else env
    limits = [str(timeout), str(max_output_chars)]
    # -I -S: the wrapper needs only the standard library, and no PYTHON* variable.
    wrapper = [sys.executable, "-I", "-S", reaper.__file__, *limits, "--", *argv]
    if bwrap_sandbox.use_sandbox(sandbox, network=network):
        wrapper = bwrap_sandbox.sandbox_argv(
            wrapper, workspace=(workspace or cwd).resolve(), cwd=cwd.resolve(), network=network
        )
        # bwrap's own environment is readable inside (/proc/1/environ): give it
        # the scrubbed one, not ours.
        env = bwrap_sandbox.sandbox_env(env)
    with subprocess.Popen(
        wrapper,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as proc:
        data = stdin.encode("utf-8") if stdin is not None else None
        try:
            out, err = proc.communicate(data, timeout=timeout + _BACKSTOP_SECONDS)
        except subprocess.TimeoutExpired:
            _stop(proc)
            return ProcessResult("", "", None, timed_out=True, timeout=timeout)
        except BaseException:  # KeyboardInterrupt above all
            _stop(proc)
            raise
    return _parse_report(out, err, proc.returncode, timeout)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Have the wrapper kill its tree (SIGTERM), then make sure of it (SIGKILL to its group).

    In the sandbox the wrapper's parent is bwrap: ending bwrap ends the PID
    namespace, and the kernel kills every process in it.
    """
    with contextlib.suppress(OSError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    # start_new_session made the wrapper a group leader: its pid is the group id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=_STOP_SECONDS)


def _parse_report(out: bytes, err: bytes, code: int | None, timeout: float) -> ProcessResult:
    try:
        report = ast.literal_eval(out.decode("utf-8"))
        if not isinstance(report, dict):
            raise ValueError(report)
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        # The wrapper (or bwrap) failed before the command ran: say what it said.
        why = err.decode("utf-8", errors="replace").strip() or f"exit code {code}"
        return ProcessResult("", f"the command could not be started: {why}", code, False, timeout)
    stdout, stdout_omitted = _stream(report["stdout"])
    stderr, stderr_omitted = _stream(report["stderr"])
    return ProcessResult(
        stdout=stdout,
        stderr=stderr,
        exit_code=report["exit_code"],
        timed_out=report["timed_out"],
        timeout=timeout,
        stdout_omitted=stdout_omitted,
        stderr_omitted=stderr_omitted,
        killed=report["killed"],
    )


def _stream(part: dict[str, Any]) -> tuple[str, Omission | None]:
    head, tail = str(part["head"]), str(part["tail"])
    chars, lines = int(part["omitted_chars"]), int(part["omitted_lines"])
    return head + tail, Omission(len(head), chars, lines) if chars else None


def format_process_result(r: ProcessResult, *, max_chars: int = 50_000) -> str:
    """The text a tool returns for `r`: status line, then stdout and stderr sections.

    Each section is clipped to `max_chars` (keeping its head and tail) so one
    noisy command cannot flood the model's context; the notice says how much
    was left out.
    """
    if r.timed_out:
        after = f" after {r.timeout:g}s" if r.timeout is not None else ""
        parts = [f"timed out{after}; the process group was killed"]
    else:
        parts = [f"exit code: {r.exit_code}{_signal_note(r.exit_code)}"]
    if r.killed:
        what = "process" if r.killed == 1 else "processes"
        if r.timed_out:
            parts.append(f"[also killed {r.killed} other {what} it had started]")
        else:
            parts.append(f"[killed {r.killed} background {what} left running]")
    if r.stdout:
        parts.append("--- stdout ---\n" + _clip(r.stdout, r.stdout_omitted, max_chars))
    if r.stderr:
        parts.append("--- stderr ---\n" + _clip(r.stderr, r.stderr_omitted, max_chars))
    if not r.stdout and not r.stderr:
        parts.append("(no output)")
    return "\n".join(parts)


def _signal_note(code: int | None) -> str:
    if code is None or code >= 0:
        return ""
    try:
        return f" (killed by signal {signal.Signals(-code).name})"
    except ValueError:
        return f" (killed by signal {-code})"


def _clip(text: str, omitted: Omission | None, limit: int) -> str:
    if omitted is not None:
        head, tail = text[: omitted.at], text[omitted.at :]
        chars, lines = omitted.chars, omitted.lines
    elif len(text) <= limit:
        return text.rstrip("\n")
    else:
        head, tail = text[: limit // 2], text[len(text) - limit // 2 :]
        chars = len(text) - len(head) - len(tail)
        lines = text.count("\n", len(head), len(text) - len(tail))
    if len(head) + len(tail) > limit:  # a smaller limit than the wrapper's
        keep = limit // 2
        chars += len(head) - keep + len(tail) - keep
        lines += head.count("\n", keep) + tail.count("\n", 0, len(tail) - keep)
        head, tail = head[:keep], tail[len(tail) - keep :]
    what = f"{chars:,} characters" + (f" ({lines:,} lines)" if lines else "")
    return f"{head}\n[... {what} omitted ...]\n{tail}".rstrip("\n")
