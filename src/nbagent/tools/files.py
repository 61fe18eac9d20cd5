"""File and directory tools, confined to a `Workspace`.

Names and parameters follow the seed's tool list so prompts written for it keep
working. Failures the model can fix raise `ToolError` with the path as given.

What the tools guarantee, whatever the model asks:
- every access goes through the workspace's directory descriptors
  (`Workspace.locate`), so neither a path nor a symlink swapped in meanwhile
  leads outside the root;
- secret files (`.env`, keys, credential stores: `DEFAULT_SECRET_FILE_PATTERNS`)
  are never read, written or deleted; listings may show that they exist;
- only regular files are opened: a FIFO, socket or device is refused first;
- output stays within one limit, clipped at whole lines with the exact call
  that continues where it stopped, and files are streamed, never held whole
  (bounded memory even for a 500 MB line);
- a call that blocks (a hung network file system) returns an error after the
  timeout instead of holding the turn.

This module holds the tool definitions and the guards they apply (errors, time
limit, secret-file checks); how files are read is in `file_reading`, what
listings and `get_file_info` say in `file_listing`, and which files hold
credentials in `secret_files`.
"""

from __future__ import annotations

import contextvars
import errno
import functools
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol, TypeVar

from .base import Tool, ToolError, tool
from .file_listing import MAX_LIST_ENTRIES, count_entries, entry_facts, kind_word, list_into
from .file_reading import (
    content_budget,
    lines_call,
    read_file_notice,
    read_head,
    read_lines,
    read_whole,
)
from .secret_files import DEFAULT_SECRET_FILE_PATTERNS, SecretFiles  # builtin.py imports it here
from .workspace import Location, NotRegularFileError, Workspace, write_atomic_at

DEFAULT_TIMEOUT = 60.0

T = TypeVar("T")


class FileChangeRecorder(Protocol):
    """Where the file tools report what they change, for review and undo (issue 12):
    `nbagent.undo.Recorder`. Shell commands and code run by `run_python` are not seen."""

    def file_will_change(self, path: str, display: str | None = None, *, tree: bool = True) -> Any:
        """Before a write or delete of the absolute `path`; returns a token."""
        ...

    def file_did_change(self, token: Any, after: bytes | None = None) -> None:
        """After it succeeded, with the bytes written when known."""
        ...


def file_tools(
    ws: Workspace,
    *,
    max_output_chars: int = 30_000,
    secret_file_patterns: Iterable[str] = DEFAULT_SECRET_FILE_PATTERNS,
    timeout: float = DEFAULT_TIMEOUT,
    max_read_chars: int | None = None,
    recorder: FileChangeRecorder | None = None,
) -> list[Tool]:
    """The seed's file and directory tools, working inside `ws`.

    Args:
        ws: the workspace that confines every path.
        max_output_chars: the most characters a tool answers with, notice included
            (the session's tool-output limit: nothing clips these answers again).
        secret_file_patterns: names of files never read, written or deleted.
        timeout: seconds after which a blocked call answers with an error.
        max_read_chars: old name of max_output_chars.
        recorder: told before and after each write, create or delete (undo, issue 12).
    """
    limit = max_read_chars if max_read_chars is not None else max_output_chars
    secrets = SecretFiles(secret_file_patterns)
    bounded = _time_limit(timeout)

    # undo (issue 12): what is at a path before a tool changes it, and after.
    def will_change(loc: Location, given: str, *, tree: bool = True) -> Any:
        if recorder is None:
            return None
        return recorder.file_will_change(_location_path(ws, loc), given, tree=tree)

    def did_change(token: Any, after: bytes | None = None) -> None:
        if recorder is not None and token is not None:
            recorder.file_did_change(token, after)

    @tool(category="write")
    @bounded
    def create_file(file_path: str, content: str = "") -> str:
        """Create a text file with the given content, replacing the file if it already exists.

        Use it to write a new file or to rewrite a whole file; for a small change
        to an existing file prefer replace_string_in_file. Missing parent
        directories are created.

        Args:
            file_path: Path of the file, relative to the workspace.
            content: The complete text to write (UTF-8).
        """
        secrets.refuse(file_path, (file_path,), "write")
        data = content.encode("utf-8")
        with (
            _errors(
                "write", file_path, is_dir=f"'{file_path}' is a directory; choose a file path."
            ),
            ws.locate(file_path, create_parents=True) as loc,
        ):
            secrets.refuse(file_path, loc.parts, "write")
            if loc.name == ".":
                raise IsADirectoryError(errno.EISDIR, "Is a directory")
            token = will_change(loc, file_path)
            existed = write_atomic_at(loc.dir_fd, loc.name, data)
            did_change(token, data)
        verb = "Overwrote" if existed else "Created"
        return f"{verb} file '{file_path}' ({len(data)} bytes written)."

    @tool(read_only=True)
    @bounded
    def read_file(file_path: str) -> str:
        """Read a whole text file.

        Use it to look at a file before changing it or to answer questions about
        it. Binary files are refused. A file too long for one answer is cut at a
        whole line, with the exact read_file_lines call that continues from there.

        Args:
            file_path: Path of the file, relative to the workspace.
        """
        secrets.refuse(file_path, (file_path,), "read")
        budget = content_budget(limit, file_path)
        with _reading(file_path), ws.open_file(file_path) as (fd, loc):
            secrets.refuse(file_path, loc.parts, "read")
            head = read_head(fd, file_path, budget)
        if head.complete:
            return head.text if head.text else f"(file '{file_path}' is empty)"
        return head.text + read_file_notice(file_path, head, limit)

    @tool(read_only=True)
    @bounded
    def read_file_lines(file_path: str, start_line: int, end_line: int) -> str:
        """Read a range of lines from a text file, each prefixed with its line number.

        Use it for large files, or to look closely at one part of a file (for
        example before replace_string_in_file). Lines are numbered from 1 and both
        ends of the range are included. An answer that would be too long stops at
        a whole line and says where to continue; a single very long line is cut.

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
        secrets.refuse(file_path, (file_path,), "read")
        budget = content_budget(limit, file_path)
        with _reading(file_path), ws.open_file(file_path) as (fd, loc):
            secrets.refuse(file_path, loc.parts, "read")
            got = read_lines(fd, file_path, start_line, end_line, budget)
        if start_line > got.total:
            raise ToolError(
                f"start_line {start_line} is past the end of '{file_path}', "
                f"which has {got.total} lines."
            )
        last = start_line + len(got.lines) - 1
        body = "\n".join(f"{n} | {line}" for n, line in enumerate(got.lines, start=start_line))
        head = f"Lines {start_line}-{last} of {got.total} in '{file_path}'"
        if got.stopped:
            end = min(end_line, got.total)
            return (
                f"{head}:\n{body}\n[Stopped after line {last} to stay within {limit:,} "
                f"characters. Continue from line {last + 1} with "
                f"{lines_call(file_path, last + 1, end)}.]"
            )
        if end_line > got.total:
            head += f" (the file ends at line {got.total})"
        return f"{head}:\n{body}"

    @tool(category="write")
    @bounded
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
        secrets.refuse(file_path, (file_path,), "edit")
        with _reading(file_path, action="edit"), ws.open_file(file_path) as (fd, loc):
            secrets.refuse(file_path, loc.parts, "edit")
            text = read_whole(fd, file_path)
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
            new_text = text[:at] + new_string + text[at + len(old_string) :]
            new_data = new_text.encode("utf-8")
            token = will_change(loc, file_path)
            write_atomic_at(loc.dir_fd, loc.name, new_data)
            did_change(token, new_data)
        line = text.count("\n", 0, at) + 1
        return f"Replaced 1 occurrence in '{file_path}' at line {line}."

    @tool(read_only=True)
    @bounded
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
        with (
            _errors(
                "list",
                directory_path,
                missing=f"Directory '{directory_path}' does not exist.",
                not_dir=f"'{directory_path}' is a file, not a directory; "
                "use get_file_info or read_file.",
            ),
            ws.open_directory(directory_path) as (fd, _),
        ):
            lines: list[str] = []
            list_into(lines, fd, recursive, show_hidden, "")
            hidden = 0 if show_hidden else sum(1 for n in os.listdir(fd) if n.startswith("."))
        if len(lines) > MAX_LIST_ENTRIES:
            lines[MAX_LIST_ENTRIES:] = [
                f"[Listing stopped at {MAX_LIST_ENTRIES} entries; list a subdirectory to see more.]"
            ]
        if hidden:
            lines.append(
                f"({hidden} hidden entries in '{directory_path}' not shown; "
                "set show_hidden to see them)"
            )
        if not lines:
            return f"Directory '{directory_path}' is empty."
        return f"Contents of '{directory_path}':\n" + "\n".join(lines)

    @tool(category="write")
    @bounded
    def create_directory(directory_path: str) -> str:
        """Create a directory, including any missing parent directories.

        Use it to prepare a folder structure; it succeeds if the directory
        already exists. (create_file creates parent directories by itself.)

        Args:
            directory_path: Path of the directory, relative to the workspace.
        """
        with (
            _errors("create", directory_path),
            ws.locate(directory_path, create_parents=True) as loc,
        ):
            if loc.name == ".":
                return f"Directory '{directory_path}' already exists."
            token = will_change(loc, directory_path, tree=False)
            try:
                os.mkdir(loc.name, 0o777, dir_fd=loc.dir_fd)
                did_change(token)
            except FileExistsError:
                st = os.stat(loc.name, dir_fd=loc.dir_fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    return f"Directory '{directory_path}' already exists."
                raise ToolError(
                    f"'{directory_path}' exists and is a {kind_word(st.st_mode)}, not a directory."
                ) from None
        return f"Created directory '{directory_path}'."

    @tool(category="destructive")
    @bounded
    def delete_file(file_path: str) -> str:
        """Delete one file (or symlink). Directories are refused: use delete_directory.

        Use it only when the user's task calls for removing the file; it cannot be undone.

        Args:
            file_path: Path of the file, relative to the workspace.
        """
        secrets.refuse(file_path, (file_path,), "delete")
        is_dir = f"'{file_path}' is a directory; use delete_directory to remove it."
        with (
            _errors("delete", file_path, is_dir=is_dir),
            ws.locate(file_path, follow_last=False) as loc,
        ):
            if loc.name == ".":
                raise ToolError(is_dir)
            st = os.stat(loc.name, dir_fd=loc.dir_fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                _check_link_target(ws, file_path)
                token = will_change(loc, file_path)
                os.unlink(loc.name, dir_fd=loc.dir_fd)
                did_change(token)
                return f"Deleted symlink '{file_path}' (its target was left in place)."
            if stat.S_ISDIR(st.st_mode):
                raise ToolError(is_dir)
            token = will_change(loc, file_path)
            # unlink never follows a link and fails on a directory, whatever was swapped in.
            os.unlink(loc.name, dir_fd=loc.dir_fd)
            did_change(token)
        return f"Deleted file '{file_path}'."

    @tool(category="destructive")
    @bounded
    def delete_directory(directory_path: str) -> str:
        """Delete a directory and everything inside it.

        Use it only when the user's task calls for removing the directory; it
        cannot be undone. The workspace root itself cannot be deleted, and files
        are refused (use delete_file).

        Args:
            directory_path: Path of the directory, relative to the workspace.
        """
        with (
            _errors(
                "delete", directory_path, missing=f"Directory '{directory_path}' does not exist."
            ),
            ws.locate(directory_path, follow_last=False) as loc,
        ):
            if ws.contains_root(loc):
                raise ToolError(
                    f"Refusing to delete '{directory_path}': it is the workspace root "
                    "(or contains it). Delete the entries inside it instead."
                )
            st = os.stat(loc.name, dir_fd=loc.dir_fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                _check_link_target(ws, directory_path)
                token = will_change(loc, directory_path)
                os.unlink(loc.name, dir_fd=loc.dir_fd)
                did_change(token)
                return f"Deleted symlink '{directory_path}' (its target was left in place)."
            if not stat.S_ISDIR(st.st_mode):
                raise ToolError(f"'{directory_path}' is a file; use delete_file to remove it.")
            count = count_entries(loc)
            token = will_change(loc, directory_path)
            # rmtree(dir_fd=) opens each level with O_NOFOLLOW and checks it is the
            # directory it stat'ed: a symlink swapped in is refused, not followed.
            try:
                shutil.rmtree(loc.name, dir_fd=loc.dir_fd)
            finally:  # a partial delete is recorded too (undo puts the tree back)
                did_change(token)
        return f"Deleted directory '{directory_path}' and the {count} entries inside it."

    @tool(read_only=True)
    @bounded
    def get_file_info(file_path: str) -> str:
        """Show facts about a file or directory: type, size, line count, modified time, permissions.

        Use it to check whether a path exists, how big a file is before reading
        it, or when it last changed.

        Args:
            file_path: Path of the file or directory, relative to the workspace.
        """
        with (
            _errors("inspect", file_path, missing=f"'{file_path}' does not exist."),
            ws.locate(file_path, follow_last=False) as link,
        ):
            st = os.stat(link.name, dir_fd=link.dir_fd, follow_symlinks=False)
            info = [f"path: {link.display}"]
            if stat.S_ISLNK(st.st_mode):
                with ws.locate(file_path) as loc:
                    try:
                        st = os.stat(loc.name, dir_fd=loc.dir_fd, follow_symlinks=False)
                        broken = ""
                    except FileNotFoundError:
                        broken = " (broken: the target does not exist)"
                    info.append(f"symlink to: {os.readlink(link.name, dir_fd=link.dir_fd)}{broken}")
                    info += entry_facts(ws, file_path, loc, st, secrets)
            else:
                info += entry_facts(ws, file_path, link, st, secrets)
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


def _location_path(ws: Workspace, loc: Location) -> str:
    """The absolute path of a located entry (from "/" when outside paths are allowed)."""
    if loc.absolute:
        return os.path.join("/", *loc.parts)
    return os.path.join(os.fspath(ws.root), *loc.parts)


# -- time limit ---------------------------------------------------------------


def _time_limit(seconds: float) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Run a tool in a daemon thread and give up waiting after `seconds`.

    A read on a hung network file system cannot be interrupted; the thread is
    left to finish (or not) on its own, and the turn goes on.
    """

    def decorate(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> T:
            outcome: list[Any] = []
            done = threading.Event()
            context = contextvars.copy_context()

            def work() -> None:
                try:
                    outcome.append((True, context.run(func, *args, **kwargs)))
                except BaseException as exc:  # handed to the caller's thread
                    outcome.append((False, exc))
                finally:
                    done.set()

            threading.Thread(target=work, name=f"nbagent-{func.__name__}", daemon=True).start()
            if not done.wait(seconds):
                raise ToolError(
                    f"{func.__name__} did not finish within {seconds:g} seconds (the file "
                    "system may be hanging); it was abandoned and may still complete later."
                )
            ok, value = outcome[0]
            if not ok:
                raise value
            return value  # type: ignore[no-any-return]

        return run

    return decorate


# -- errors -------------------------------------------------------------------


@contextmanager
def _errors(
    action: str,
    given: str,
    *,
    missing: str | None = None,
    is_dir: str | None = None,
    not_dir: str | None = None,
) -> Iterator[None]:
    """Turn OS errors into a short message with the path the model gave."""
    try:
        yield
    except FileNotFoundError:
        raise ToolError(missing or f"File '{given}' does not exist.") from None
    except IsADirectoryError:
        raise ToolError(is_dir or f"Cannot {action} '{given}': it is a directory.") from None
    except NotADirectoryError:
        raise ToolError(not_dir or f"File '{given}' does not exist.") from None
    except NotRegularFileError as exc:
        raise ToolError(
            f"Refusing to {action} '{given}': it is a {exc.kind}, not a regular file; "
            "the file tools only open regular files."
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ToolError(f"Cannot {action} '{given}': {reason}.") from None


def _reading(given: str, action: str = "read") -> Any:
    return _errors(
        action,
        given,
        is_dir=f"'{given}' is a directory; use list_directory to see its contents.",
    )


def _check_link_target(ws: Workspace, given: str) -> None:
    """Refuse (as every other tool does) a symlink whose target lies outside."""
    with ws.locate(given):
        pass
