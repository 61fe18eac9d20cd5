"""File and directory tools, confined to a `Workspace`.

Names and parameters follow the seed's tool list so prompts written for it keep
working. Failures the model can fix raise `ToolError` with the path as given.
"""

from __future__ import annotations

import codecs
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from .base import Tool, ToolError, tool
from .workspace import Workspace, atomic_write

_SNIFF_BYTES = 8192  # a NUL byte in this much of the head marks a file as binary
_CHUNK = 1 << 16
MAX_LIST_ENTRIES = 1000


def file_tools(ws: Workspace, *, max_read_chars: int = 100_000) -> list[Tool]:
    """The seed's file and directory tools, working inside `ws`."""

    @tool(category="write")
    def create_file(file_path: str, content: str = "") -> str:
        """Create a text file with the given content, replacing the file if it already exists.

        Use it to write a new file or to rewrite a whole file; for a small change
        to an existing file prefer replace_string_in_file. Missing parent
        directories are created.

        Args:
            file_path: Path of the file, relative to the workspace.
            content: The complete text to write (UTF-8).
        """
        path = ws.resolve(file_path)
        if path.is_dir():
            raise ToolError(f"'{file_path}' is a directory; choose a file path.")
        existed = path.exists()
        with _os_errors("write", file_path):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, content)
        size = len(content.encode("utf-8"))
        verb = "Overwrote" if existed else "Created"
        return f"{verb} file '{file_path}' ({size} bytes written)."

    @tool(read_only=True)
    def read_file(file_path: str) -> str:
        """Read a whole text file.

        Use it to look at a file before changing it or to answer questions about
        it. Binary files are refused. Files longer than the read limit are
        clipped, with a note giving the full size; then use read_file_lines to
        read the rest.

        Args:
            file_path: Path of the file, relative to the workspace.
        """
        path = _existing_file(ws, file_path)
        with _os_errors("read", file_path):
            text, clipped, size, lines = _read_text(path, file_path, max_read_chars)
        if not clipped:
            return text if text else f"(file '{file_path}' is empty)"
        shown = text.count("\n")  # complete lines shown; the last one may be cut
        return (
            f"{text}\n\n[Clipped: showing the first {max_read_chars:,} characters of "
            f"'{file_path}', whose full size is {size:,} bytes in {lines:,} lines. "
            f"Use read_file_lines to read the rest, e.g. from line {shown + 1}.]"
        )

    @tool(read_only=True)
    def read_file_lines(file_path: str, start_line: int, end_line: int) -> str:
        """Read a range of lines from a text file, each prefixed with its line number.

        Use it for large files, or to look closely at one part of a file (for
        example before replace_string_in_file). Lines are numbered from 1 and both
        ends of the range are included.

        Args:
            file_path: Path of the file, relative to the workspace.
            start_line: First line to return (1-based).
            end_line: Last line to return (inclusive); past the end of the file means up to the end.
        """
        if start_line < 1:
            raise ToolError(f"start_line must be 1 or more (got {start_line}).")
        if end_line < start_line:
            raise ToolError(
                f"end_line ({end_line}) must not be less than start_line ({start_line})."
            )
        path = _existing_file(ws, file_path)
        with _os_errors("read", file_path):
            _refuse_binary(path, file_path)
            selected, total, stopped = _read_lines(
                path, file_path, start_line, end_line, max_read_chars
            )
        if start_line > total:
            raise ToolError(
                f"start_line {start_line} is past the end of '{file_path}', "
                f"which has {total} lines."
            )
        last = start_line + len(selected) - 1
        width = len(str(last))
        body = "\n".join(
            f"{n:>{width}} | {line}" for n, line in enumerate(selected, start=start_line)
        )
        note = f"Lines {start_line}-{last} of {total} in '{file_path}'"
        if stopped:
            note += f" (stopped at line {last}: output reached {max_read_chars:,} characters)"
        elif end_line > total:
            note += f" (the file ends at line {total})"
        return f"{note}:\n{body}"

    @tool(category="write")
    def replace_string_in_file(file_path: str, old_string: str, new_string: str) -> str:
        """Replace one exact occurrence of a string in a text file.

        Use it for targeted edits. old_string must match the file exactly,
        including whitespace and indentation, and must occur exactly once: add
        surrounding lines to make it unique. To change every occurrence, call it
        once per occurrence or rewrite the file with create_file.

        Args:
            file_path: Path of the file, relative to the workspace.
            old_string: The exact text to find; must occur exactly once.
            new_string: The text to put in its place (may be empty to delete old_string).
        """
        if not old_string:
            raise ToolError("old_string must not be empty.")
        path = _existing_file(ws, file_path)
        with _os_errors("edit", file_path):
            _refuse_binary(path, file_path)
            try:
                # Decode the bytes ourselves: text mode would turn CRLF into LF.
                text = path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                raise _binary_error(file_path) from None
            count = text.count(old_string)
            if count == 0:
                raise ToolError(
                    f"old_string was not found in '{file_path}'. Read the file and copy "
                    "the exact text, including whitespace and indentation."
                )
            if count > 1:
                raise ToolError(
                    f"old_string appears {count} times in '{file_path}'; include more "
                    "surrounding text so that it matches exactly once."
                )
            at = text.index(old_string)
            atomic_write(path, text[:at] + new_string + text[at + len(old_string) :])
        line = text.count("\n", 0, at) + 1
        return f"Replaced 1 occurrence in '{file_path}' at line {line}."

    @tool(read_only=True)
    def list_directory(
        directory_path: str = ".", show_hidden: bool = False, recursive: bool = False
    ) -> str:
        """List the entries of a directory: subdirectories end with '/', files show their size.

        Use it to find out what files exist before reading or changing them.
        Recursive listings skip hidden directories unless show_hidden is set and
        stop after a fixed number of entries.

        Args:
            directory_path: Directory to list, relative to the workspace (default: the workspace itself).
            show_hidden: Include entries whose names start with '.'.
            recursive: Also list the contents of subdirectories, with paths relative to directory_path.
        """
        path = ws.resolve(directory_path)
        if not path.exists():
            raise ToolError(f"Directory '{directory_path}' does not exist.")
        if not path.is_dir():
            raise ToolError(
                f"'{directory_path}' is a file, not a directory; use get_file_info or read_file."
            )
        lines: list[str] = []
        with _os_errors("list", directory_path):
            for rel, entry in _walk(path, recursive, show_hidden):
                if len(lines) == MAX_LIST_ENTRIES:
                    lines.append(
                        f"[Listing stopped at {MAX_LIST_ENTRIES} entries; "
                        "list a subdirectory to see more.]"
                    )
                    break
                lines.append(_describe_entry(rel, entry))
            hidden = 0 if show_hidden else sum(1 for p in path.iterdir() if p.name.startswith("."))
        if hidden:
            lines.append(
                f"({hidden} hidden entries in '{directory_path}' not shown; "
                "set show_hidden to see them)"
            )
        if not lines:
            return f"Directory '{directory_path}' is empty."
        return f"Contents of '{directory_path}':\n" + "\n".join(lines)

    @tool(category="write")
    def create_directory(directory_path: str) -> str:
        """Create a directory, including any missing parent directories.

        Use it to prepare a folder structure; it succeeds if the directory
        already exists. (create_file creates parent directories by itself.)

        Args:
            directory_path: Path of the directory, relative to the workspace.
        """
        path = ws.resolve(directory_path)
        if path.is_dir():
            return f"Directory '{directory_path}' already exists."
        if path.exists():
            raise ToolError(f"'{directory_path}' exists and is a file, not a directory.")
        with _os_errors("create", directory_path):
            path.mkdir(parents=True, exist_ok=True)
        return f"Created directory '{directory_path}'."

    @tool(category="destructive")
    def delete_file(file_path: str) -> str:
        """Delete one file (or symlink). Directories are refused: use delete_directory.

        Use it only when the user's task calls for removing the file; it cannot be undone.

        Args:
            file_path: Path of the file, relative to the workspace.
        """
        path = ws.resolve(file_path)
        if path.is_symlink():
            with _os_errors("delete", file_path):
                path.unlink()
            return f"Deleted symlink '{file_path}' (its target was left in place)."
        if not path.exists():
            raise ToolError(f"File '{file_path}' does not exist.")
        if path.is_dir():
            raise ToolError(f"'{file_path}' is a directory; use delete_directory to remove it.")
        with _os_errors("delete", file_path):
            path.unlink()
        return f"Deleted file '{file_path}'."

    @tool(category="destructive")
    def delete_directory(directory_path: str) -> str:
        """Delete a directory and everything inside it.

        Use it only when the user's task calls for removing the directory; it
        cannot be undone. The workspace root itself cannot be deleted, and files
        are refused (use delete_file).

        Args:
            directory_path: Path of the directory, relative to the workspace.
        """
        path = ws.resolve(directory_path)
        if path == ws.root or ws.root.is_relative_to(path):
            raise ToolError(
                f"Refusing to delete '{directory_path}': it is the workspace root "
                "(or contains it). Delete the entries inside it instead."
            )
        if path.is_symlink():
            with _os_errors("delete", directory_path):
                path.unlink()
            return f"Deleted symlink '{directory_path}' (its target was left in place)."
        if not path.exists():
            raise ToolError(f"Directory '{directory_path}' does not exist.")
        if not path.is_dir():
            raise ToolError(f"'{directory_path}' is a file; use delete_file to remove it.")
        with _os_errors("delete", directory_path):
            count = sum(len(dirs) + len(files) for _, dirs, files in os.walk(path))
            shutil.rmtree(path)
        return f"Deleted directory '{directory_path}' and the {count} entries inside it."

    @tool(read_only=True)
    def get_file_info(file_path: str) -> str:
        """Show facts about a file or directory: type, size, line count, modified time, permissions.

        Use it to check whether a path exists, how big a file is before reading
        it, or when it last changed.

        Args:
            file_path: Path of the file or directory, relative to the workspace.
        """
        path = ws.resolve(file_path)
        if not path.exists() and not path.is_symlink():
            raise ToolError(f"'{file_path}' does not exist.")
        info = [f"path: {ws.relative(path)}"]
        with _os_errors("inspect", file_path):
            if path.is_symlink():
                broken = "" if path.exists() else " (broken: the target does not exist)"
                info.append(f"symlink to: {os.readlink(path)}{broken}")
            st = path.stat() if path.exists() else path.lstat()
            if path.is_dir():
                info.append("type: directory")
                info.append(f"entries: {sum(1 for _ in path.iterdir())}")
            elif path.is_file():
                info.append("type: file")
                human = f" ({_human_size(st.st_size)})" if st.st_size >= 1024 else ""
                info.append(f"size: {st.st_size:,} bytes{human}")
                lines = _count_text_lines(path)
                info.append(f"lines: {lines:,}" if lines is not None else "content: binary")
            elif path.exists():
                info.append("type: other (device, socket or pipe)")
        modified = datetime.fromtimestamp(st.st_mtime).astimezone().isoformat(timespec="seconds")
        info.append(f"modified: {modified}")
        info.append(f"permissions: {stat.filemode(st.st_mode)} ({stat.S_IMODE(st.st_mode):04o})")
        return "\n".join(info)

    return [
        create_file,
        read_file,
        read_file_lines,
        replace_string_in_file,
        list_directory,
        create_directory,
        delete_file,
        delete_directory,
        get_file_info,
    ]


@contextmanager
def _os_errors(action: str, given: str) -> Iterator[None]:
    """Turn OS errors into a short message with the path the model gave."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ToolError(f"Cannot {action} '{given}': {reason}.") from None


def _existing_file(ws: Workspace, given: str) -> Path:
    path = ws.resolve(given)
    if not path.exists():
        raise ToolError(f"File '{given}' does not exist.")
    if path.is_dir():
        raise ToolError(f"'{given}' is a directory; use list_directory to see its contents.")
    return path


def _binary_error(given: str) -> ToolError:
    return ToolError(f"'{given}' is a binary file (not UTF-8 text); it cannot be read as text.")


def _is_binary_head(head: bytes) -> bool:
    if b"\0" in head:
        return True
    try:
        # final=False: the sniffed block may end in the middle of a character.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return False


def _refuse_binary(path: Path, given: str) -> None:
    with path.open("rb") as f:
        if _is_binary_head(f.read(_SNIFF_BYTES)):
            raise _binary_error(given)


def _read_text(path: Path, given: str, limit: int) -> tuple[str, bool, int, int]:
    """(text clipped to `limit` chars, clipped?, size in bytes, line count).

    Streams the file so a huge one is never held in memory: decoding stops
    once `limit` characters are in hand, counting newlines does not.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    parts: list[str] = []
    chars = size = newlines = 0
    last = b""
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            if size == 0 and b"\0" in chunk[:_SNIFF_BYTES]:
                raise _binary_error(given)
            size += len(chunk)
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
            if chars <= limit:
                try:
                    parts.append(decoder.decode(chunk))
                except UnicodeDecodeError:
                    raise _binary_error(given) from None
                chars += len(parts[-1])
    if chars <= limit:
        try:
            parts.append(decoder.decode(b"", final=True))
        except UnicodeDecodeError:
            raise _binary_error(given) from None
    text = "".join(parts)
    lines = newlines + (1 if last and last != b"\n" else 0)
    return text[:limit], len(text) > limit, size, lines


def _read_lines(
    path: Path, given: str, start: int, end: int, limit: int
) -> tuple[list[str], int, bool]:
    """(lines start..end without line endings, total line count, stopped at `limit` chars?)."""
    selected: list[str] = []
    chars = 0
    stopped = False
    total = 0
    # newline="" keeps "\r\n" intact so that only the line ending gets stripped.
    with path.open(encoding="utf-8", newline="") as f:
        try:
            for total, line in enumerate(f, start=1):
                if start <= total <= end and not stopped:
                    if chars + len(line) > limit and selected:
                        stopped = True
                        continue
                    selected.append(line.rstrip("\r\n"))
                    chars += len(line)
        except UnicodeDecodeError:
            raise _binary_error(given) from None
    return selected, total, stopped


def _count_text_lines(path: Path) -> int | None:
    """Line count of a text file, or None if it looks binary."""
    newlines = 0
    last = b""
    with path.open("rb") as f:
        first = True
        while chunk := f.read(_CHUNK):
            if first and _is_binary_head(chunk[:_SNIFF_BYTES]):
                return None
            first = False
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
    return newlines + (1 if last and last != b"\n" else 0)


def _walk(
    directory: Path, recursive: bool, show_hidden: bool, prefix: str = ""
) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(path relative to the listed directory, entry) in sorted tree order.

    Hidden directories are not entered unless shown, and symlinks are never
    followed (they could lead outside the workspace or loop).
    """
    with os.scandir(directory) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith(".") and not show_hidden:
            continue
        rel = prefix + entry.name
        yield rel, entry
        if recursive and entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), recursive, show_hidden, rel + "/")


def _describe_entry(rel: str, entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return f"{rel} -> {os.readlink(entry.path)}"
    if entry.is_dir():
        return rel + "/"
    try:
        size = entry.stat().st_size
    except OSError:
        return rel
    return f"{rel}  ({_human_size(size)})"


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024:
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
