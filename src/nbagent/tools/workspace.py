"""The directory the built-in tools work in, and safe file writes.

Every path the model gives goes through `Workspace.resolve`, which refuses
anything that leads outside the root (`..`, absolute paths, symlinks) unless
the workspace was created with `allow_outside=True`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from .base import ToolError


class Workspace:
    """A root directory that confines the paths the tools may touch."""

    def __init__(self, root: str | os.PathLike[str] = ".", allow_outside: bool = False) -> None:
        root_path = Path(root).expanduser()
        root_path.mkdir(parents=True, exist_ok=True)
        self.root: Path = root_path.resolve()
        self.allow_outside = allow_outside

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r}, allow_outside={self.allow_outside})"

    def resolve(self, path: str) -> Path:
        """The absolute path for `path` (relative to the root), refusing escapes.

        Symlinks are followed to check where they lead; a symlink as the last
        component is returned as the link itself (so deleting it removes the
        link, not its target).
        """
        try:
            candidate = Path(os.path.expanduser(path))
            if not candidate.is_absolute():
                candidate = self.root / candidate
            real = candidate.resolve()
        except (OSError, ValueError, RuntimeError) as exc:
            # ValueError: embedded NUL byte; RuntimeError: symlink loop (Python < 3.13).
            raise ToolError(f"Invalid path '{path}': {exc}") from None

        if not self.allow_outside and not self._inside(real):
            if self._inside(Path(os.path.normpath(candidate))):
                raise ToolError(
                    f"Path '{path}' is a symlink (or goes through one) that leads outside the "
                    f"workspace {self.root}; only paths inside it are allowed."
                )
            raise ToolError(
                f"Path '{path}' is outside the workspace {self.root}; "
                "only paths inside it are allowed."
            )

        if candidate.name not in ("", ".", "..") and candidate.is_symlink():
            with contextlib.suppress(OSError, RuntimeError):
                link = candidate.parent.resolve() / candidate.name
                if self.allow_outside or self._inside(link.parent):
                    return link
        return real

    def relative(self, p: Path) -> str:
        """`p` relative to the root for display, or absolute if it lies outside."""
        try:
            rel = p.relative_to(self.root)
        except ValueError:
            return str(p)
        return str(rel) if rel.parts else "."

    def _inside(self, p: Path) -> bool:
        return p == self.root or p.is_relative_to(self.root)


def atomic_write(path: Path, data: str | bytes) -> None:
    """Replace `path` with `data` so readers see the old or the new file, never half of one.

    Text is written as UTF-8 without newline translation. An existing file keeps
    its permission bits; writing through a symlink updates the link's target.
    """
    path = Path(os.path.realpath(path))
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_current_umask()  # what open() would have given a new file

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _current_umask() -> int:
    # Read it from /proc where possible: os.umask() can only be read by setting
    # it, which races with other threads creating files.
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; best effort (not supported everywhere).
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
