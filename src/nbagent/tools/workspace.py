"""The directory the file tools work in: confinement that holds under races, and safe writes.

Every file tool reaches its file through `Workspace.locate`, which walks the
path one component at a time from an open descriptor of the root
(`os.open(..., dir_fd=..., O_NOFOLLOW)`). A symlink met on the way is read and
its target walked the same way, so it is followed one step at a time and
checked at each step; `..` goes back to the directory it came from and never
above the root. The tools then read, write, rename and delete *relative to the
descriptor of the final directory*, never by path again: a directory swapped
for a symlink while a call runs cannot redirect it outside the workspace.

`Workspace.resolve` (a path, checked then used by name) remains for tools that
hand a path to another program (`execute_python_file`); those are not race-free.

Writes go to a temp file next to the target, named with the writer's PID, then
replace it atomically. Temp files left by a killed writer are removed when the
next `Workspace` on that directory is created (`clean_stale_temp_files`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from secrets import token_hex
from typing import cast

from .base import ToolError

log = logging.getLogger("nbagent.tools")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Opening a regular file for reading: O_NONBLOCK so that a FIFO swapped in after
# the type check cannot block the open; O_NOCTTY so a terminal never becomes ours.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# What opening a symlink with O_NOFOLLOW (| O_DIRECTORY) fails with: Linux and
# macOS say ELOOP, FreeBSD EMLINK, and some systems ENOTDIR for O_DIRECTORY.
_SYMLINK_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK, errno.ENOTDIR})
_MAX_SYMLINKS = 40  # as Linux's path walk
_RETRIES = 20  # re-walks when the final entry changes between the walk and the open


class NotRegularFileError(OSError):
    """The path names a FIFO, socket, device or other special file."""

    def __init__(self, kind: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file: it is a {kind}")
        self.kind = kind


@dataclass(frozen=True)
class Location:
    """An entry named `name` in the open directory `dir_fd`.

    `name` is "." for the anchor directory itself (the workspace root). `parts`
    is the entry's path from the root (from "/" when outside paths are allowed).
    The descriptor belongs to the `locate` context that made it.
    """

    dir_fd: int
    name: str
    parts: tuple[str, ...]
    absolute: bool = False  # parts start at "/", not at the workspace root

    @property
    def display(self) -> str:
        joined = "/".join(self.parts)
        return "/" + joined if self.absolute else joined or "."


class Workspace:
    """A root directory that confines the paths the file tools may touch."""

    def __init__(self, root: str | os.PathLike[str] = ".", allow_outside: bool = False) -> None:
        given = Path(root).expanduser()
        given.mkdir(parents=True, exist_ok=True)
        self.root: Path = given.resolve()
        self.allow_outside = allow_outside
        # Absolute paths the model gives are matched against the root as
        # resolved and as given (the two differ when the root is under a symlink).
        self._anchors = {self.root.parts, PurePosixPath(os.path.abspath(given)).parts}
        removed = clean_stale_temp_files(self.root)
        if removed:
            log.info(
                "removed %d temp file(s) left by killed writers in %s", len(removed), self.root
            )

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r}, allow_outside={self.allow_outside})"

    # -- race-free access ---------------------------------------------------

    @contextlib.contextmanager
    def locate(
        self, path: str, *, follow_last: bool = True, create_parents: bool = False
    ) -> Iterator[Location]:
        """Walk `path` from the root's descriptor; the result holds open directory descriptors.

        Symlinks in the middle are always followed (and checked); the last one
        only with `follow_last`. `create_parents` makes missing directories on
        the way. Refusals (outside the workspace) raise ToolError; a missing or
        non-directory component raises the OSError the walk met.
        """
        walk = _Walk(self, path)
        try:
            yield walk.run(follow_last=follow_last, create_parents=create_parents)
        finally:
            walk.close()

    @contextlib.contextmanager
    def open_file(self, path: str) -> Iterator[tuple[int, Location]]:
        """(descriptor opened for reading, its location) for the regular file at `path`.

        Anything but a regular file is refused before it is opened
        (IsADirectoryError, NotRegularFileError), and checked again on the
        descriptor, so a FIFO or device swapped in meanwhile is never read.
        """
        for _ in range(_RETRIES):
            with self.locate(path) as loc:
                before = os.stat(loc.name, dir_fd=loc.dir_fd, follow_symlinks=False)
                if stat.S_ISLNK(before.st_mode):
                    continue  # became a symlink after the walk: walk it again
                _require_regular(before)
                try:
                    fd = os.open(loc.name, _READ_FLAGS, dir_fd=loc.dir_fd)
                except OSError as exc:
                    if exc.errno in _SYMLINK_ERRNOS:
                        continue
                    raise
                try:
                    now = os.fstat(fd)
                    if not _same_file(before, now):
                        continue
                    _require_regular(now)
                    yield fd, loc
                    return
                finally:
                    os.close(fd)
        raise OSError(errno.EAGAIN, "the path kept changing while it was being opened")

    @contextlib.contextmanager
    def open_directory(self, path: str) -> Iterator[tuple[int, Location]]:
        """(descriptor of the directory at `path`, its location); NotADirectoryError for files."""
        for _ in range(_RETRIES):
            with self.locate(path) as loc:
                try:
                    fd = os.open(loc.name, _DIR_FLAGS, dir_fd=loc.dir_fd)
                except OSError as exc:
                    if exc.errno not in _SYMLINK_ERRNOS:
                        raise
                    st = os.stat(loc.name, dir_fd=loc.dir_fd, follow_symlinks=False)
                    if stat.S_ISLNK(st.st_mode):
                        continue
                    raise NotADirectoryError(errno.ENOTDIR, "Not a directory") from None
                try:
                    yield fd, loc
                    return
                finally:
                    os.close(fd)
        raise OSError(errno.EAGAIN, "the path kept changing while it was being opened")

    def contains_root(self, loc: Location) -> bool:
        """True if `loc` is the workspace root or a directory above it."""
        if not self.allow_outside:
            return not loc.parts
        return self.root.is_relative_to(Path("/", *loc.parts))

    # -- paths for other programs ------------------------------------------

    def resolve(self, path: str) -> Path:
        """The absolute path for `path` (relative to the root), refusing escapes.

        Checked now and used by name later, so NOT race-free: only for tools
        that hand a path to another program (execute_python_file). Symlinks are
        followed to check where they lead; a symlink as the last component is
        returned as the link itself.
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
            raise self.outside_error(
                path, via_symlink=self._inside(Path(os.path.normpath(candidate)))
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

    def outside_error(self, path: str, *, via_symlink: bool) -> ToolError:
        if via_symlink:
            return ToolError(
                f"Path '{path}' is a symlink (or goes through one) that leads outside the "
                f"workspace {self.root}; only paths inside it are allowed."
            )
        return ToolError(
            f"Path '{path}' is outside the workspace {self.root}; only paths inside it are allowed."
        )

    def _inside(self, p: Path) -> bool:
        return p == self.root or p.is_relative_to(self.root)

    def _parts_under_root(self, absolute: str) -> list[str] | None:
        parts = PurePosixPath(absolute).parts
        for anchor in self._anchors:
            if parts[: len(anchor)] == anchor:
                return list(parts[len(anchor) :])
        return None


class _Walk:
    """One component-by-component walk; owns the directory descriptors it opens.

    `stack` holds the directories from the anchor (root, or "/" when outside
    paths are allowed) down to the current one, each opened with O_NOFOLLOW
    from the one before, so popping it is exactly `..`.
    """

    def __init__(self, ws: Workspace, given: str) -> None:
        self.ws = ws
        self.given = given
        self.stack: list[int] = []
        self.names: list[str] = []
        self.via_symlink = False
        self.hops = 0

    def close(self) -> None:
        for fd in self.stack:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.stack.clear()

    def run(self, *, follow_last: bool, create_parents: bool) -> Location:
        pending = deque(self._start())
        while pending:
            name = pending.popleft()
            if name in ("", "."):
                continue
            if name == "..":
                self._up()
                continue
            if all(rest in ("", ".") for rest in pending):  # the last component
                target = self._readlink(name) if follow_last else None
                if target is None:
                    return self._location(self.stack[-1], name)
                self._follow(target, pending)
                continue
            fd = self._open_dir(name, create_parents)
            if fd is None:
                target = self._readlink(name)
                if target is None:  # not a link: a file in the middle of the path
                    raise NotADirectoryError(errno.ENOTDIR, "Not a directory", self.given)
                self._follow(target, pending)
                continue
            self.stack.append(fd)
            self.names.append(name)
        # The path ends at a directory on the stack (the root itself, or after "..").
        if len(self.stack) > 1:
            os.close(self.stack.pop())
            return self._location(self.stack[-1], self.names.pop())
        return Location(self.stack[-1], ".", (), self.ws.allow_outside)

    def _location(self, dir_fd: int, name: str) -> Location:
        return Location(dir_fd, name, (*self.names, name), self.ws.allow_outside)

    def _start(self) -> list[str]:
        path = os.path.expanduser(self.given)
        if "\0" in path:
            raise ToolError(f"Invalid path '{self.given}': it contains a NUL character.")
        if self.ws.allow_outside:
            self.stack.append(os.open("/", _DIR_FLAGS))
            full = path if os.path.isabs(path) else os.path.join(self.ws.root, path)
            return path_components(full)
        self.stack.append(os.open(self.ws.root, _DIR_FLAGS))
        if not os.path.isabs(path):
            return path.split("/")
        parts = self.ws._parts_under_root(path)
        if parts is None:
            raise self.ws.outside_error(self.given, via_symlink=False)
        return parts

    def _up(self) -> None:
        if len(self.stack) > 1:
            os.close(self.stack.pop())
            self.names.pop()
        elif not self.ws.allow_outside:  # ".." of "/" is "/"
            raise self.ws.outside_error(self.given, via_symlink=self.via_symlink)

    def _open_dir(self, name: str, create: bool) -> int | None:
        """The descriptor of subdirectory `name`, or None if it is (probably) a symlink."""
        for attempt in range(2):
            try:
                return os.open(name, _DIR_FLAGS, dir_fd=self.stack[-1])
            except FileNotFoundError:
                if not create or attempt:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=self.stack[-1])
            except OSError as exc:
                if exc.errno in _SYMLINK_ERRNOS:
                    return None
                raise
        return None  # unreachable: the second attempt returns or raises

    def _readlink(self, name: str) -> str | None:
        try:
            return os.readlink(name, dir_fd=self.stack[-1])
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):  # not a link / not there
                return None
            raise

    def _follow(self, target: str, pending: deque[str]) -> None:
        self.hops += 1
        if self.hops > _MAX_SYMLINKS:
            raise OSError(errno.ELOOP, "Too many levels of symbolic links", self.given)
        self.via_symlink = True
        if os.path.isabs(target):
            if self.ws.allow_outside:
                parts = path_components(target)
            else:
                under = self.ws._parts_under_root(target)
                if under is None:
                    raise self.ws.outside_error(self.given, via_symlink=True)
                parts = under
            while len(self.stack) > 1:  # restart from the anchor
                os.close(self.stack.pop())
                self.names.pop()
        else:
            parts = target.split("/")
        pending.extendleft(reversed(parts))


def path_components(absolute: str) -> list[str]:
    """The components of an absolute path after its "/", with ".." kept for the walk."""
    return absolute.split("/")[1:]


def _require_regular(st: os.stat_result) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory")
    raise NotRegularFileError(file_kind(st.st_mode))


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def file_kind(mode: int) -> str:
    """A file type in words, for messages."""
    kinds = (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "named pipe (FIFO)"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    )
    return next((word for test, word in kinds if test(mode)), "special file")


# -- atomic writes -----------------------------------------------------------

_TEMP_SUFFIX = re.compile(r"\.nbagent-(\d+)-[0-9a-f]+\.tmp\Z")


def temp_name(name: str) -> str:
    """`.<name>.nbagent-<pid>-<random>.tmp`: the PID tells cleanup whether the writer lives."""
    # Keep the whole name within the usual 255-byte limit.
    short = name.encode("utf-8")[:150].decode("utf-8", errors="ignore")
    return f".{short}.nbagent-{os.getpid()}-{token_hex(4)}.tmp"


def write_atomic_at(dir_fd: int, name: str, data: bytes) -> bool:
    """Replace entry `name` of directory `dir_fd` with `data`; True if it existed.

    Readers see the old file or the new one, never half of one. An existing
    file keeps its permission bits; a new one gets what open() would give it.
    The rename is relative to `dir_fd` too, so it cannot land anywhere else.
    """
    tmp, existed = _write_temp(dir_fd, name, data)
    try:
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    with contextlib.suppress(OSError):  # makes the rename durable; best effort
        os.fsync(dir_fd)
    return existed


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> None:
    """`write_atomic_at` for a path outside any workspace (a notebook file, say).

    Text is written as UTF-8 without newline translation; writing through a
    symlink updates the link's target.
    """
    real = os.path.realpath(path)
    parent, name = os.path.split(real)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        tmp, _ = _write_temp(dir_fd, name, payload)
        try:
            os.replace(os.path.join(parent, tmp), real)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _write_temp(dir_fd: int, name: str, data: bytes) -> tuple[str, bool]:
    """(name of a complete, synced temp file next to `name`, whether `name` exists)."""
    try:
        current: os.stat_result | None = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        current = None
    if current is not None and not stat.S_ISLNK(current.st_mode):
        _require_regular(current)  # never replace a directory, FIFO or device
    if current is not None and stat.S_ISREG(current.st_mode):
        mode = stat.S_IMODE(current.st_mode)
    else:
        mode = 0o666 & ~_current_umask()  # what open() would have given a new file
    tmp = temp_name(name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    return tmp, current is not None


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


# -- stale temp files ----------------------------------------------------------

# Trees nobody writes notebooks or agent files into; skipping them keeps the
# start-up sweep of a big project (or a home directory) short.
_SKIP_DIRS = frozenset(
    {".git", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache", ".cache"}
)
MAX_SWEEP_DIRS = 2000


def clean_stale_temp_files(root: str | os.PathLike[str]) -> list[str]:
    """Remove temp files under `root` whose writer's PID is no longer alive; return their paths.

    Symlinks are not followed, and at most MAX_SWEEP_DIRS directories are
    visited. A live writer's temp file is never touched.
    """
    removed: list[str] = []
    # closing(): stopping early must close the walk's directory descriptors now.
    walk = cast(Generator[tuple[str, list[str], list[str], int]], os.fwalk(root))
    with contextlib.closing(walk):
        for visited, (dirpath, dirnames, filenames, dir_fd) in enumerate(walk, start=1):
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
            for name in filenames:
                match = _TEMP_SUFFIX.search(name)
                if match and name.startswith(".") and not _pid_alive(int(match.group(1))):
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=dir_fd)
                        removed.append(os.path.join(dirpath, name))
            if visited >= MAX_SWEEP_DIRS:
                break
    return removed


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    except OverflowError:
        return False
    return True
