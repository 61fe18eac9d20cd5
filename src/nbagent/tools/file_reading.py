"""Reading text files for the file tools: streamed, bounded, clipped at whole lines.

`read_file`, `read_file_lines`, `replace_string_in_file` and `get_file_info`
read through these helpers so that a file is never held whole (bounded memory
even for a 500 MB line), binary content is refused the same way everywhere,
and an answer too long for the limit stops at a whole line with the exact
`read_file_lines` call that continues it. The tools themselves (`files.py`)
keep the guards: workspace confinement, secret files, errors and the time limit.
"""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

from .base import ToolError

MAX_EDIT_BYTES = 64 * 1024 * 1024  # replace_string_in_file holds the whole file

_SNIFF_BYTES = 8192  # a NUL byte in this much of the head marks a file as binary
_CHUNK = 1 << 18
_NOTICE_ROOM = 400  # characters kept free for a clipping notice (plus the path, twice)


def _binary_error(given: str) -> ToolError:
    return ToolError(f"'{given}' is a binary file (not UTF-8 text); it cannot be read as text.")


def _chunks(fd: int, given: str) -> Iterator[bytes]:
    """The file in chunks; the first one is checked for binary content."""
    first = True
    while chunk := os.read(fd, _CHUNK):
        if first and _is_binary_head(chunk[:_SNIFF_BYTES]):
            raise _binary_error(given)
        first = False
        yield chunk


def _is_binary_head(head: bytes) -> bool:
    if b"\0" in head:
        return True
    try:
        # final=False: the sniffed block may end in the middle of a character.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return False


def content_budget(limit: int, given: str) -> int:
    """Characters of file content an answer may hold, leaving room for the notice."""
    return max(limit - _NOTICE_ROOM - 2 * len(given), limit // 2, 1)


def lines_call(given: str, start: int, end: int) -> str:
    return f"read_file_lines(file_path={json.dumps(given)}, start_line={start}, end_line={end})"


@dataclass
class _Head:
    text: str  # whole lines 1..lines (or the start of line 1 when it alone is too long)
    complete: bool
    lines: int  # whole lines in `text`
    total_lines: int
    size: int


def read_head(fd: int, given: str, budget: int) -> _Head:
    """The file if it fits in `budget` characters, else its first whole lines that do.

    Decoding stops once `budget` characters are in hand; counting lines goes on
    to the end, one chunk at a time.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    parts: list[str] = []
    chars = size = newlines = 0
    last = b""
    for chunk in _chunks(fd, given):
        size += len(chunk)
        newlines += chunk.count(b"\n")
        last = chunk[-1:]
        if chars <= budget:
            try:
                parts.append(decoder.decode(chunk))
            except UnicodeDecodeError:
                raise _binary_error(given) from None
            chars += len(parts[-1])
    if chars <= budget:
        try:
            parts.append(decoder.decode(b"", final=True))
        except UnicodeDecodeError:
            raise _binary_error(given) from None
    text = "".join(parts)
    total = newlines + (1 if last and last != b"\n" else 0)
    if len(text) <= budget:
        return _Head(text, True, total, total, size)
    cut = text.rfind("\n", 0, budget)
    if cut < 0:  # line 1 alone is longer than the budget
        return _Head(text[:budget], False, 0, total, size)
    shown = text[: cut + 1]
    return _Head(shown, False, shown.count("\n"), total, size)


def read_file_notice(given: str, head: _Head, limit: int) -> str:
    where = f"'{given}' has {head.total_lines:,} lines ({head.size:,} bytes)"
    if head.lines == 0:
        first = (
            f"[Clipped: line 1 is longer than {limit:,} characters and this is its start; {where}."
        )
        if head.total_lines < 2:
            return f"\n{first}]"
        end = min(head.total_lines, 1 + 200)
        return f"\n{first} Continue from line 2 with {lines_call(given, 2, end)}.]"
    n = head.lines
    end = min(head.total_lines, 2 * n)
    return (
        f"[Clipped to stay within {limit:,} characters: this shows lines 1-{n}; {where}. "
        f"Continue from line {n + 1} with {lines_call(given, n + 1, end)}.]"
    )


@dataclass
class _Lines:
    lines: list[str]
    total: int
    stopped: bool  # lines in the range were left out to stay within the budget


def read_lines(fd: int, given: str, start: int, end: int, budget: int) -> _Lines:
    """Lines start..end without line endings, streamed with bounded memory.

    A line that alone exceeds `budget` is cut (saying its full size); the range
    stops at a whole line when the next would not fit.
    """
    stream = _LineStream(fd, given, keep=4 * budget + 4)  # bytes for `budget` characters
    stream.skip(start - 1)
    selected: list[str] = []
    used = 0
    stopped = False
    for n in range(start, end + 1):
        got = stream.next_line()
        if got is None:
            break
        raw, length = got
        text = _decode_line(raw, cut=length > len(raw), given=given)
        cost = len(text) + len(str(n)) + 4  # "n | " and the newline
        if selected and used + cost > budget:
            stopped = True
            break
        if cost > budget:
            room = max(budget - len(str(n)) - 80, 0)
            text = text[:room] + f" [... line {n} cut here: it is {length:,} bytes long]"
            cost = len(text) + len(str(n)) + 4
        selected.append(text)
        used += cost
    return _Lines(selected, stream.total_lines(), stopped)


class _LineStream:
    """A file's lines, read chunk by chunk, holding at most `keep` bytes of any line."""

    def __init__(self, fd: int, given: str, keep: int) -> None:
        self._chunks = _chunks(fd, given)
        self._keep = keep
        self._buf = b""
        self._pos = 0
        self._newlines = 0  # line endings consumed so far
        self._last = b""  # the file's last byte read so far

    def _fill(self) -> bool:
        self._buf = next(self._chunks, b"")
        self._pos = 0
        if self._buf:
            self._last = self._buf[-1:]
        return bool(self._buf)

    def skip(self, lines: int) -> None:
        """Pass over `lines` lines, counting line endings a chunk at a time."""
        while lines > 0:
            if self._pos >= len(self._buf) and not self._fill():
                return
            here = self._buf.count(b"\n", self._pos)
            if here < lines:
                lines -= here
                self._newlines += here
                self._pos = len(self._buf)
                continue
            for _ in range(lines):
                self._pos = self._buf.index(b"\n", self._pos) + 1
            self._newlines += lines
            lines = 0

    def next_line(self) -> tuple[bytes, int] | None:
        """(the line's first `keep` bytes, its full length in bytes), or None at the end."""
        kept = bytearray()
        length = 0
        while True:
            if self._pos >= len(self._buf) and not self._fill():
                return (bytes(kept), length) if length else None
            nl = self._buf.find(b"\n", self._pos)
            stop = len(self._buf) if nl < 0 else nl + 1
            if len(kept) < self._keep:
                kept += self._buf[self._pos : min(stop, self._pos + self._keep - len(kept))]
            length += stop - self._pos
            self._pos = stop
            if nl >= 0:
                self._newlines += 1
                return bytes(kept), length

    def total_lines(self) -> int:
        """Lines in the whole file (reads the rest of it)."""
        rest = self._buf.count(b"\n", self._pos)
        while self._fill():
            rest += self._buf.count(b"\n")
        unterminated = 1 if self._last and self._last != b"\n" else 0
        return self._newlines + rest + unterminated


def _decode_line(raw: bytes, *, cut: bool, given: str) -> str:
    try:
        # A cut line may end inside a character: let the decoder hold it back.
        text = codecs.getincrementaldecoder("utf-8")().decode(raw, final=not cut)
    except UnicodeDecodeError:
        raise _binary_error(given) from None
    return text if cut else text.rstrip("\r\n")


def read_whole(fd: int, given: str) -> str:
    size = os.fstat(fd).st_size
    if size > MAX_EDIT_BYTES:
        raise ToolError(
            f"'{given}' is {size:,} bytes, too big to edit in place (the limit is "
            f"{MAX_EDIT_BYTES:,}); rewrite it with create_file or a shell command."
        )
    data = b"".join(_chunks(fd, given))
    try:
        # Decode the bytes ourselves: text mode would turn CRLF into LF.
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _binary_error(given) from None


def count_text_lines(fd: int) -> int | None:
    """Line count of a text file, or None if it looks binary."""
    newlines = 0
    last = b""
    first = True
    while chunk := os.read(fd, _CHUNK):
        if first and _is_binary_head(chunk[:_SNIFF_BYTES]):
            return None
        first = False
        newlines += chunk.count(b"\n")
        last = chunk[-1:]
    return newlines + (1 if last and last != b"\n" else 0)
