"""What is at a path now (a file's bytes, a directory's tree, a symlink), as a
`FileState`, with the content kept only if it fits in the room the turn has left."""

from __future__ import annotations

import hashlib
import os
import stat

from ..render.format import human_size
from .changes import FileState, TreeEntry


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_state(
    path: str, room: int, limit: int, *, keep_tree: bool = True
) -> tuple[FileState, str | None]:
    """What is at `path` now, with its content if it fits in `room` bytes."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return FileState("absent"), None
    except OSError as exc:
        return FileState("absent"), f"it could not be read ({exc.strerror})"
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return FileState("link", target=os.readlink(path), mode=mode), None
    if stat.S_ISDIR(st.st_mode):
        if not keep_tree:
            return FileState("dir", mode=mode), None
        tree, problem = read_tree(path, room, limit)
        return FileState("dir", mode=mode, tree=tree), problem
    if not stat.S_ISREG(st.st_mode):
        return FileState("absent"), "it is not a regular file"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        return FileState("file", mode=mode), f"it could not be read ({exc.strerror})"
    digest = content_digest(data)
    if len(data) > room:
        return FileState("file", digest=digest, mode=mode), (
            f"it is too large to keep a copy ({human_size(len(data))}; the undo_snapshot_mb "
            f"limit is {human_size(limit)})"
        )
    return FileState("file", data=data, digest=digest, mode=mode), None


def read_tree(root: str, room: int, limit: int) -> tuple[list[TreeEntry] | None, str | None]:
    entries: list[TreeEntry] = []
    total = 0
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        rel_dir = os.path.relpath(directory, root)
        for name in sorted(dirs):
            full = os.path.join(directory, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if os.path.islink(full):
                entries.append(TreeEntry(rel, "link", target=os.readlink(full)))
            else:
                entries.append(TreeEntry(rel, "dir", mode=stat.S_IMODE(os.lstat(full).st_mode)))
        for name in sorted(files):
            full = os.path.join(directory, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                entries.append(TreeEntry(rel, "link", target=os.readlink(full)))
                continue
            if not stat.S_ISREG(st.st_mode):
                return None, f"it holds {rel}, which is not a regular file"
            total += st.st_size
            if total > room:
                return None, (
                    f"it is too large to keep a copy (more than {human_size(room)}; the "
                    f"undo_snapshot_mb limit is {human_size(limit)})"
                )
            with open(full, "rb") as f:
                entries.append(TreeEntry(rel, "file", data=f.read(), mode=stat.S_IMODE(st.st_mode)))
    return entries, None
