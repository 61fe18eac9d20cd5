"""What the file tools say about directories and entries.

`list_directory` lines (name, size or kind, symlink target) and the facts
`get_file_info` shows, kept apart from the tools so `files.py` holds only the
tool definitions and their guards. Nothing here follows a symlink: the
entries are read through the workspace's directory descriptors.
"""

from __future__ import annotations

import os
import stat

from .file_reading import count_text_lines
from .secret_files import SecretFiles
from .workspace import Location, Workspace, file_kind

MAX_LIST_ENTRIES = 1000


def list_into(out: list[str], dir_fd: int, recursive: bool, show_hidden: bool, prefix: str) -> None:
    """Append entries of `dir_fd` in sorted tree order, stopping past MAX_LIST_ENTRIES.

    Hidden directories are not entered unless shown, and symlinks are never
    followed (they could lead outside the workspace or loop).
    """
    with os.scandir(dir_fd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if len(out) > MAX_LIST_ENTRIES:
            return
        if entry.name.startswith(".") and not show_hidden:
            continue
        rel = prefix + entry.name
        out.append(_describe_entry(rel, entry, dir_fd))
        if recursive and entry.is_dir(follow_symlinks=False):
            try:
                sub = os.open(
                    entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd
                )
            except OSError:
                continue  # replaced or unreadable since it was listed
            try:
                list_into(out, sub, recursive, show_hidden, rel + "/")
            finally:
                os.close(sub)


def _describe_entry(rel: str, entry: os.DirEntry[str], dir_fd: int) -> str:
    try:
        if entry.is_symlink():
            return f"{rel} -> {os.readlink(entry.name, dir_fd=dir_fd)}"
        if entry.is_dir(follow_symlinks=False):
            return rel + "/"
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return rel
    if not stat.S_ISREG(st.st_mode):
        return f"{rel}  [{file_kind(st.st_mode)}]"
    return f"{rel}  ({_human_size(st.st_size)})"


def entry_facts(
    ws: Workspace, given: str, loc: Location, st: os.stat_result, secrets: SecretFiles
) -> list[str]:
    """What `get_file_info` says about an entry: its type, size and line count.

    A secret file's lines are not counted: the file tools never read it.
    """
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        fd = os.open(loc.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=loc.dir_fd)
        try:
            return ["type: directory", f"entries: {len(os.listdir(fd))}"]
        finally:
            os.close(fd)
    if not stat.S_ISREG(mode):
        return [f"type: {file_kind(mode)}"]
    info = ["type: file"]
    human = f" ({_human_size(st.st_size)})" if st.st_size >= 1024 else ""
    info.append(f"size: {st.st_size:,} bytes{human}")
    if secrets.match(loc.parts) or secrets.match((given,)):
        info.append("lines: not counted (a secret file: the file tools do not read it)")
        return info
    with ws.open_file(given) as (fd, _):
        lines = count_text_lines(fd)
    info.append(f"lines: {lines:,}" if lines is not None else "content: binary")
    return info


def count_entries(loc: Location) -> int:
    fd = os.open(loc.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=loc.dir_fd)
    try:
        return sum(len(d) + len(f) for _, d, f, _ in os.fwalk(".", dir_fd=fd))
    finally:
        os.close(fd)


def kind_word(mode: int) -> str:
    return "file" if stat.S_ISREG(mode) else file_kind(mode)


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024:
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
