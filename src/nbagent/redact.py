"""Redaction at the boundary: known secret values become `[redacted:NAME]`.

Every text that leaves the process for the model, or is shown, logged or saved,
passes `current_redactor().redact(...)` (or `redact_output` / `redact_obj` for
tool outputs and content blocks, `StreamRedactor` for streamed text).

Known secrets are:
- values of variables whose names look secret (`is_secret_name`), from the
  environment and from `.env` (read with python-dotenv, never put into
  `os.environ`);
- the password part of URLs in any variable's value
  (`DATABASE_URL=postgres://u:pw@host/db`): everywhere when it qualifies as a
  secret by itself, and always in its URL context (`:pw@`), however short;
- values the user declares (`set_declared_secrets`).
Values shorter than 8 characters, numbers, booleans and paths are not secrets,
so `MAX_TURNS=20` or `SSH_AUTH_SOCK=/tmp/...` never blank out output.

Each secret is found in the forms programs print it in: raw (which also covers
NUL- or newline-separated lists such as `/proc/*/environ`), JSON- and
Python-repr-escaped, shell-quoted and backslash-escaped, and URL-encoded.
Deliberate encodings (base64, hex, reversal, splitting with other characters)
are out of scope: redaction stops accidents and careless commands, not a
program written to smuggle a value out.

Cheap to import (stdlib only; python-dotenv is imported when a `.env` exists).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shlex
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, unquote

if TYPE_CHECKING:
    from .events import ToolOutput

MIN_SECRET_LENGTH = 8
_PREFILTER_MAX_FORMS = 48  # beyond this, one regex scan beats a search per form
MIN_PARTIAL = 4  # a piece of a secret left at a clip is hidden from this length on
DECLARED_NAME = "declared"

_BINARY_BLOCKS = frozenset({"image", "document"})
_SIGNED_BLOCKS = frozenset({"thinking", "redacted_thinking"})
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE")
_BOOLEANS = frozenset({"true", "false", "yes", "no", "on", "off"})
_PATH_PREFIXES = ("/", "~", "./", "../", ".\\", "..\\")
_WINDOWS_PATH = re.compile(r"[A-Za-z]:[\\/]")
# scheme://user:password@host — the password runs to the last `@` of the authority.
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#:@]*:([^\s/?#]+)@")
# What bash's `printf %q` leaves unescaped.
_SHELL_SAFE = re.compile(r"[^A-Za-z0-9_./:@%+=~-]")
_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def is_secret_name(name: str) -> bool:
    """True for names that look secret: KEY, TOKEN, SECRET, PASSWORD, PASSWD,
    CREDENTIAL or PRIVATE anywhere in the name, or AUTH as a whole `_`-separated word.

    `SSH_AUTH_SOCK` matches, but its value is a path, and paths are never secrets.
    """
    upper = name.upper()
    if any(word in upper for word in _SECRET_WORDS):
        return True
    return "AUTH" in re.split(r"[^A-Z0-9]+", upper)


def looks_like_secret_value(value: str) -> bool:
    """False for values too short or too common to be worth redacting."""
    if len(value) < MIN_SECRET_LENGTH:
        return False
    if value.lower() in _BOOLEANS:
        return False
    if value.startswith(_PATH_PREFIXES) or _WINDOWS_PATH.match(value):
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False  # a number (including "Infinity")


def url_passwords(value: str) -> list[str]:
    """The password parts of the URLs in `value`, as written (maybe percent-encoded)."""
    return [m.group(1) for m in _URL_PASSWORD.finditer(value)] if "://" in value else []


def secret_values(
    environ: Mapping[str, str],
    dotenv_values: Mapping[str, str | None],
    declared: Iterable[str] = (),
) -> dict[str, str]:
    """Known secret values, each mapped to the name shown in its place.

    The environment's names win over `.env`'s, and both over "declared".
    """
    found: dict[str, str] = {}

    def add(value: str, name: str) -> None:
        value = value.strip()
        if looks_like_secret_value(value):
            found.setdefault(value, name)

    sources = (environ, {k: v for k, v in dotenv_values.items() if v is not None})
    for variables in sources:
        for name, value in variables.items():
            if is_secret_name(name):
                add(value, name)
            for password in url_passwords(value):
                add(password, name)
                add(unquote(password), name)
    for value in declared:
        add(value, DECLARED_NAME)
        for password in url_passwords(value):
            add(password, DECLARED_NAME)
    return found


def url_password_contexts(
    environ: Mapping[str, str],
    dotenv_values: Mapping[str, str | None],
    declared: Iterable[str] = (),
) -> dict[str, str]:
    """URL passwords of any length, mapped to their variable's name.

    Redacted only in their URL context (`:password@`), so a short password
    such as `pw` is hidden in `postgres://u:pw@host` without blanking every
    "pw" elsewhere.
    """
    found: dict[str, str] = {}
    named = [*environ.items(), *((k, v) for k, v in dotenv_values.items() if v is not None)]
    named += [(DECLARED_NAME, v) for v in declared]
    for name, value in named:
        for password in url_passwords(value):
            found.setdefault(password, name)
    return found


def printed_forms(value: str) -> set[str]:
    """The forms in which a program may print `value`: raw and escaped."""
    forms = {value}
    forms.add(json.dumps(value)[1:-1])
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    forms.add(repr(value)[1:-1])
    quoted = shlex.quote(value)
    forms.add(quoted)
    if quoted.startswith("'") and quoted.endswith("'"):
        forms.add(quoted[1:-1])
    forms.add(_SHELL_SAFE.sub(lambda m: "\\" + m.group(), value))  # printf %q
    forms.add(re.sub(r'(["$`\\])', r"\\\1", value))  # inside double quotes (declare -p)
    for encoded in (quote(value, safe=""), quote(value), quote_plus(value)):
        forms.add(encoded)
        forms.add(_PERCENT_ESCAPE.sub(lambda m: m.group().lower(), encoded))
    forms.discard("")
    return forms


def _trie_pattern(forms: Iterable[str]) -> str:
    """One regex for all `forms`, shaped as a prefix tree so each position is
    tried once per shared prefix, not once per form. Optional continuations
    are greedy, so at any position the longest matching form wins.
    """
    end = ""  # marks a node where a form ends
    trie: dict[str, Any] = {}
    for form in forms:
        node = trie
        for ch in form:
            node = node.setdefault(ch, {})
        node[end] = {}

    def build(node: dict[str, Any]) -> str:
        branches = []
        for ch in sorted(k for k in node if k != end):
            child = node[ch]
            run = ch
            # A chain of single-child nodes is one literal, so nesting stays
            # shallow even for a long value such as a PEM key.
            while len(child) == 1 and end not in child:
                ((ch, child),) = child.items()
                run += ch
            branches.append(re.escape(run) + build(child))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if end in node else body

    return build(trie)


class Redactor:
    """Replaces every printed form of the known secrets with `[redacted:NAME]`.

    One compiled alternation of all forms (a prefix tree, longest first), so the
    leftmost match is the longest form at that place and a large text is
    scanned once.
    """

    def __init__(
        self, secrets: Mapping[str, str], url_contexts: Mapping[str, str] | None = None
    ) -> None:
        replacements: dict[str, str] = {}
        for value, name in secrets.items():
            for form in printed_forms(value):
                replacements.setdefault(form, f"[redacted:{name}]")
        for password, name in (url_contexts or {}).items():
            for form in printed_forms(password):
                replacements.setdefault(f":{form}@", f":[redacted:{name}]@")
        self.replacements = replacements
        self.names = frozenset(secrets.values()) | frozenset((url_contexts or {}).values())
        forms = list(replacements)
        self.pattern: re.Pattern[str] | None = re.compile(_trie_pattern(forms)) if forms else None
        self.max_form_length = max(map(len, forms), default=0)
        self._few_forms = len(forms) <= _PREFILTER_MAX_FORMS
        by_first: dict[str, list[str]] = {}
        for form in forms:
            by_first.setdefault(form[0], []).append(form)
        self._forms_by_first_char = by_first
        # Where the tail of a streamed text could begin a form: its first three
        # characters (or fewer, at the very end) are those of some form. Found
        # by the regex engine; each hit is then checked in full.
        heads = {re.escape(f[:3]) for f in forms if len(f) > 3}
        ends = {re.escape(f[:k]) for f in forms for k in (1, 2) if k < len(f)}
        self._tail_candidates = re.compile(
            "(?=" + "|".join([*sorted(heads), *(e + r"\Z" for e in sorted(ends))]) + ")"
        )

    def __bool__(self) -> bool:
        return self.pattern is not None

    def _replace(self, match: re.Match[str]) -> str:
        return self.replacements[match.group()]

    def redact(self, text: str) -> str:
        if self.pattern is None or not text:
            return text
        # Most texts hold no secret. With a few forms, `in` (a fast C search per
        # form) proves that about four times faster than the regex scan.
        if self._few_forms and not any(form in text for form in self.replacements):
            return text
        return self.pattern.sub(self._replace, text)

    def redact_obj(self, obj: Any) -> Any:
        """Strings inside lists, tuples and dicts (content blocks, messages).

        Left alone: image and document data, thinking blocks (the API checks
        their signature, so a changed one would break the history), dict keys
        and non-strings.
        """
        if self.pattern is None:
            return obj
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, list):
            return [self.redact_obj(x) for x in obj]
        if isinstance(obj, tuple):
            return tuple(self.redact_obj(x) for x in obj)
        if isinstance(obj, dict):
            kind = obj.get("type")
            if kind in _SIGNED_BLOCKS:
                return obj
            binary = kind in _BINARY_BLOCKS
            return {
                k: v if binary and k == "source" else self.redact_obj(v) for k, v in obj.items()
            }
        return obj

    def redact_output(self, output: ToolOutput) -> ToolOutput:
        if self.pattern is None:
            return output
        return dataclasses.replace(
            output,
            content=self.redact_obj(output.content),
            summary=self.redact(output.summary),
        )

    def redact_clipped(self, head: str, tail: str) -> tuple[str, str]:
        """`head` and `tail` of a clipped text, each redacted, and a piece of a
        secret cut by the clip (its start at the end of `head`, its end at the
        start of `tail`, if at least `MIN_PARTIAL` characters) replaced too.

        For producers that clip before the runner sees the output (head-and-tail
        buffers): the runner cannot recognise half a secret afterwards.
        """
        if self.pattern is None:
            return head, tail
        head, tail = self.redact(head), self.redact(tail)
        cut_start = max(
            (
                k
                for f in self.replacements
                for k in range(MIN_PARTIAL, len(f))
                if head.endswith(f[:k])
            ),
            default=0,
        )
        if cut_start:
            head = head[:-cut_start] + "[redacted:partial]"
        cut_end = max(
            (
                k
                for f in self.replacements
                for k in range(MIN_PARTIAL, len(f))
                if tail.startswith(f[-k:])
            ),
            default=0,
        )
        if cut_end:
            tail = "[redacted:partial]" + tail[cut_end:]
        return head, tail

    def could_start_secret(self, tail: str) -> bool:
        """True if `tail` is a proper prefix of some form (more text could complete it)."""
        return any(
            len(form) > len(tail) and form.startswith(tail)
            for form in self._forms_by_first_char.get(tail[0], ())
        )


class StreamRedactor:
    """Redacts streamed text; a secret split across chunks is never emitted.

    `feed` returns what is safe to emit now and holds back only the shortest
    tail that could still become a secret (at most the longest form minus one
    character; nothing when the tail cannot start one). The concatenated output
    equals `redactor.redact` of the concatenated input.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        self.redactor = redactor if redactor is not None else current_redactor()
        self._pending = ""

    def feed(self, chunk: str) -> str:
        redactor = self.redactor
        if redactor.pattern is None:
            return chunk
        text = self._pending + chunk
        out: list[str] = []
        pos = 0
        window = max(0, len(text) - redactor.max_form_length + 1)
        while True:
            # The hold point is the earliest place where more text could start or
            # lengthen a match. A match that starts before it is final (even if
            # it runs past it): the regex would pick the same one on the whole text.
            hold = self._hold_point(text, max(pos, window))
            match = redactor.pattern.search(text, pos)
            if match is None or match.start() >= hold:
                out.append(text[pos:hold])
                pos = hold
                break
            out.append(text[pos : match.start()])
            out.append(redactor.replacements[match.group()])
            pos = match.end()
        self._pending = text[pos:]
        return "".join(out)

    def _hold_point(self, text: str, start: int) -> int:
        """The earliest position >= start whose tail could still grow into a form."""
        redactor = self.redactor
        candidate = redactor._tail_candidates.search(text, start)
        while candidate is not None:
            i = candidate.start()
            if redactor.could_start_secret(text[i:]):
                return i
            candidate = redactor._tail_candidates.search(text, i + 1)
        return len(text)

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return self.redactor.redact(rest)


# --------------------------------------------------------------------------- process-wide

_lock = threading.Lock()
_declared: tuple[str, ...] = ()
_dotenv_paths: tuple[Path, ...] | None = None  # None: `.env` in the working directory
_cached: tuple[object, Redactor] | None = None


def set_declared_secrets(values: Iterable[str]) -> None:
    """Values the user declares secret (a setting); redacted as `[redacted:declared]`."""
    global _declared
    _declared = tuple(v for v in values if v)


def set_dotenv_paths(paths: Iterable[str | os.PathLike[str]] | None) -> None:
    """The `.env` files whose secret values are redacted (default: `./.env`)."""
    global _dotenv_paths
    _dotenv_paths = None if paths is None else tuple(Path(p) for p in paths)


def _dotenv_files() -> tuple[Path, ...]:
    return _dotenv_paths if _dotenv_paths is not None else (Path.cwd() / ".env",)


def _stat_key(path: Path) -> tuple[str, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path), st.st_mtime_ns, st.st_size)


def _read_dotenv(paths: Iterable[Path]) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for path in paths:
        if not path.is_file():
            continue
        from dotenv import dotenv_values  # values only: never copied into os.environ

        for name, value in dotenv_values(path).items():
            values.setdefault(name, value)
    return values


def _environ_fingerprint() -> int:
    # os.environ's raw store hashes in a sixth of the time of its decoded items,
    # and this runs for every tool call and log record.
    raw = getattr(os.environ, "_data", None)
    items = raw.items() if isinstance(raw, dict) else os.environ.items()
    return hash(tuple(items))


def current_redactor() -> Redactor:
    """The redactor for the process's current secrets, rebuilt when the
    environment, a `.env` file or the declared values change (a cheap check)."""
    global _cached
    files = _dotenv_files()
    key = (_environ_fingerprint(), tuple(map(_stat_key, files)), _declared)
    cached = _cached
    if cached is not None and cached[0] == key:
        return cached[1]
    with _lock:
        if _cached is not None and _cached[0] == key:
            return _cached[1]
        environ = dict(os.environ)
        dotenv = _read_dotenv(files)
        redactor = Redactor(
            secret_values(environ, dotenv, _declared),
            url_password_contexts(environ, dotenv, _declared),
        )
        _cached = (key, redactor)
        return redactor


def redact(text: str) -> str:
    return current_redactor().redact(text)


def redact_obj(obj: Any) -> Any:
    return current_redactor().redact_obj(obj)


def redact_output(output: ToolOutput) -> ToolOutput:
    return current_redactor().redact_output(output)


# --------------------------------------------------------------------------- logging


class RedactingFilter(logging.Filter):
    """Redacts a record's message, traceback and stack text; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = current_redactor()
        if not redactor:
            return True
        message = record.getMessage()
        redacted = redactor.redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.redact(record.stack_info)
        return True


_installed_filter: RedactingFilter | None = None


def install_log_redaction(logger_name: str = "nbagent") -> RedactingFilter:
    """Redact every record of `logger_name` and its children (idempotent).

    A logger's own filters do not see records that propagate up from its
    children (`nbagent.tools` logs the tool calls), so besides the filter on
    the `nbagent` logger, records of child loggers are redacted as they are
    made, through the log record factory (chained to any existing one).
    """
    global _installed_filter
    if _installed_filter is not None:
        return _installed_filter
    record_filter = RedactingFilter()
    logging.getLogger(logger_name).addFilter(record_filter)
    previous = logging.getLogRecordFactory()
    prefix = logger_name + "."

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.name.startswith(prefix):
            record_filter.filter(record)
        return record

    logging.setLogRecordFactory(make_record)
    _installed_filter = record_filter
    _uninstall.append(lambda: logging.getLogger(logger_name).removeFilter(record_filter))
    _uninstall.append(lambda: logging.setLogRecordFactory(previous))
    return record_filter


_uninstall: list[Callable[[], None]] = []


def uninstall_log_redaction() -> None:
    """Undo `install_log_redaction` (tests)."""
    global _installed_filter
    while _uninstall:
        _uninstall.pop()()
    _installed_filter = None
