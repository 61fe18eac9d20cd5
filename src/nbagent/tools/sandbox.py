"""The OS sandbox for tool subprocesses: bubblewrap (`bwrap`) where the machine allows it.

Inside it a command sees the whole filesystem read-only, except the workspace, a
private /tmp and the user's cache directory; it sees only its own processes (a
PID namespace, so `/proc/<kernel pid>/environ` is out of reach); it has no
capabilities even when the user is root (as root, bwrap would otherwise keep
them, and `mount -o remount,rw /` would undo the read-only view); it dies with
its caller; and, when the network is cut, it has only a private loopback.
The sockets of daemons that start processes on request (the D-Bus buses,
systemd, the user's runtime directory, docker, podman, containerd) and the
Jupyter runtime directory (kernel connection files, server tokens) are replaced
by empty ones: through them, sandboxed code could run code outside the sandbox.

It does not hide files from reading: everything the user can read outside those
masks (dotfiles, `~/.aws`, a `.env`) stays readable.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

SandboxSetting = bool | Literal["auto"]

_PROBE_SECONDS = 10.0


class SandboxUnavailable(RuntimeError):
    """The sandbox was required (or the network cut) but bwrap does not work here."""


def use_sandbox(setting: SandboxSetting, *, network: bool) -> bool:
    """Whether to run in the sandbox; raises `SandboxUnavailable` when it is required but absent.

    Cutting the network needs the sandbox, so `network=False` without one fails
    closed instead of running with the network on.
    """
    if setting is False:
        if not network:
            raise SandboxUnavailable("cutting the network needs the sandbox, which is turned off.")
        return False
    problem = probe(network=network)
    if problem is None:
        return True
    if setting is True or not network:
        need = "the sandbox is required" if setting is True else "cutting the network needs it"
        raise SandboxUnavailable(f"{need}, but bubblewrap does not work here: {problem}")
    return False


@functools.cache
def probe(*, network: bool = True) -> str | None:
    """None when bwrap runs a command with our flags on this machine, else why not.

    Asked once per process (per network setting): the answer does not change.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bwrap is not installed (Debian/Ubuntu package: bubblewrap)."
    true = shutil.which("true") or "/bin/true"
    # Popen.wait, not run()/communicate(): nothing to read, and no pipe to fill.
    try:
        with subprocess.Popen(
            [bwrap, *_base_flags(network=network), "--chdir", "/", true],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        ) as proc:
            try:
                code = proc.wait(timeout=_PROBE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                return "bwrap did not answer."
    except OSError as exc:
        return f"bwrap could not start: {exc}"
    if code != 0:
        return f"bwrap exited with code {code} (user namespaces may be disabled)."
    return None


def _base_flags(*, network: bool) -> list[str]:
    flags = [
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--unshare-pid",
        "--die-with-parent",
        "--cap-drop", "ALL",
        "--tmpfs", "/tmp",
    ]  # fmt: skip
    if not network:
        flags.append("--unshare-net")
    return flags


def sandbox_argv(command: list[str], *, workspace: Path, cwd: Path, network: bool) -> list[str]:
    """`command` wrapped in bwrap: the mounts are applied in order, later ones on top."""
    bwrap = shutil.which("bwrap") or "bwrap"
    flags = _base_flags(network=network)
    # The private /tmp hides whatever lived there, the interpreter and the package
    # included when they were installed under /tmp: show those again, read-only.
    for path in _python_paths_under_tmp():
        flags += ["--ro-bind", str(path), str(path)]
    masked = _maskable(_jupyter_runtime_dirs() + _service_dirs())
    for path in masked:
        flags += ["--tmpfs", str(path)]
    for sock in sorted({Path(s).resolve() for s in _SERVICE_SOCKETS}):
        if sock.is_socket() and not any(sock.is_relative_to(m) for m in masked):
            flags += ["--ro-bind", "/dev/null", str(sock)]
    # Name resolution may live under a masked directory (systemd-resolved's stub).
    resolv = Path("/etc/resolv.conf").resolve()
    if any(resolv.is_relative_to(m) for m in masked) and resolv.exists():
        flags += ["--ro-bind", str(resolv.parent), str(resolv.parent)]
    cache = user_cache_dir()
    if cache is not None:
        flags += ["--bind", str(cache), str(cache)]
    flags += ["--bind", str(workspace), str(workspace), "--chdir", str(cwd)]
    return [bwrap, *flags, "--", *command]


def sandbox_env(env: dict[str, str]) -> dict[str, str]:
    """`env` adjusted for a read-only home directory."""
    env = dict(env)
    cache = user_cache_dir()
    # matplotlib wants a writable config directory and warns on every import
    # without one; its cache directory is writable. A user's matplotlibrc is kept.
    if cache is not None and "MPLCONFIGDIR" not in env:
        config_home = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        rc = config_home / "matplotlib" / "matplotlibrc"
        if "MATPLOTLIBRC" not in env and rc.is_file():
            env["MATPLOTLIBRC"] = str(rc)
        env["MPLCONFIGDIR"] = str(cache / "matplotlib")
    return env


def user_cache_dir() -> Path | None:
    """$XDG_CACHE_HOME or ~/.cache, created if missing; None if there is none to make."""
    try:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        cache.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError):
        return None
    return cache.resolve()


def _python_paths() -> set[Path]:
    """The interpreter, its prefixes and import path: what the wrapper and `python` need."""
    paths = {Path(sys.executable).parent, Path(__file__).parent}
    paths |= {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path)}
    real = set()
    for path in paths:
        if path.is_absolute():  # "" and relative entries mean the caller's directory
            with contextlib.suppress(OSError):
                real.add(path.resolve())
    return real


def _python_paths_under_tmp() -> list[Path]:
    tmp = Path("/tmp")
    return sorted(p for p in _python_paths() if p.is_relative_to(tmp) and p != tmp and p.exists())


# Daemons that run commands on request: `systemd-run --user`, `docker run`, ...
_SERVICE_DIRS = ["/run/dbus", "/run/systemd", "/run/containerd", "/run/podman", "/run/docker"]
_SERVICE_SOCKETS = ["/run/docker.sock", "/var/run/docker.sock"]


def _service_dirs() -> list[Path]:
    dirs = [Path(d) for d in _SERVICE_DIRS]
    if hasattr(os, "getuid"):
        dirs.append(Path(f"/run/user/{os.getuid()}"))
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        dirs.append(Path(runtime))
    return dirs


def _maskable(dirs: list[Path]) -> list[Path]:
    """The existing directories among `dirs`, never one that holds the interpreter."""
    python = _python_paths()
    found: set[Path] = set()
    for path in dirs:
        with contextlib.suppress(OSError):
            real = path.resolve()
            if real.is_dir() and not any(p.is_relative_to(real) for p in python):
                found.add(real)
    return sorted(found)


def _jupyter_runtime_dirs() -> list[Path]:
    """Where kernel connection files and server tokens live, to be masked."""
    dirs: set[Path] = set()
    with contextlib.suppress(Exception):  # jupyter_core is optional here
        from jupyter_core.paths import jupyter_runtime_dir

        dirs.add(Path(jupyter_runtime_dir()))
    if "ipykernel" in sys.modules:
        with contextlib.suppress(Exception):  # not inside a kernel
            from ipykernel.connect import get_connection_file

            dirs.add(Path(get_connection_file()).parent)

    return sorted(dirs)
