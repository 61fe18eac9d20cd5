"""What a captured run becomes: content blocks for the model, outputs for a notebook.

The model reads text (stdout, stderr, each output's best text form, the error with
a clipped traceback) and images as image blocks; a notebook cell that ran the same
code would store nbformat outputs, which `cell_outputs` rebuilds.
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Any

from ...tools.clip import clip_text
from .capture import Captured

if TYPE_CHECKING:
    from IPython.core.interactiveshell import ExecutionResult

TRACEBACK_LINES = 30
MAX_IMAGES = 10
MAX_IMAGE_B64 = 5_000_000  # the Messages API's per-image limit is 5 MB
IMAGE_MIMES = ("image/png", "image/jpeg")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
_DEFAULT_REPR = re.compile(r"^<[\w.]+ (object|at 0x)[^>]*>$")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _image_b64(data: Any) -> str | None:
    if isinstance(data, bytes):
        if data[:4] == b"\x89PNG" or data[:3] == b"\xff\xd8\xff":
            return base64.b64encode(data).decode("ascii")
        data = data.decode("ascii", errors="ignore")
    if isinstance(data, str):
        return "".join(data.split())
    return None


def _bundle_text(data: dict[str, Any], max_chars: int, max_html_chars: int) -> str:
    """The text the model reads for one MIME bundle: text/plain unless it is only a
    default `<... object>` repr, then markdown, HTML (clipped), LaTeX or JSON."""
    plain = data.get("text/plain")
    if isinstance(plain, list):
        plain = "".join(plain)
    if isinstance(plain, str) and plain and not _DEFAULT_REPR.match(plain.strip()):
        return clip_text(plain, max_chars)
    for mime, limit in (
        ("text/markdown", max_chars),
        ("text/html", max_html_chars),
        ("text/latex", max_chars),
    ):
        value = data.get(mime)
        if isinstance(value, list):
            value = "".join(value)
        if isinstance(value, str) and value.strip():
            return f"({mime})\n" + clip_text(value, limit)
    if "application/json" in data:
        import json

        try:
            return "(application/json)\n" + clip_text(
                json.dumps(data["application/json"]), max_chars
            )
        except (TypeError, ValueError):
            pass
    others = [m for m in data if m not in ("text/plain", *IMAGE_MIMES)]
    text = plain if isinstance(plain, str) else ""
    if others:
        text = (text + "\n" if text else "") + f"[output types: {', '.join(others)}]"
    return text


class ContentBlocks:
    """Text and image content blocks, in order; consecutive text is merged."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.blocks: list[dict[str, Any]] = []
        self._text: list[str] = []
        self.images = 0

    def text(self, text: str) -> None:
        if text:
            self._text.append(text.rstrip("\n"))

    def image(self, mime: str, b64: str) -> None:
        if self.images >= MAX_IMAGES:
            self.text(f"[{mime} image left out: more than {MAX_IMAGES} images]")
            return
        if len(b64) > MAX_IMAGE_B64:
            self.text(f"[{mime} image left out: {len(b64):,} base64 characters is too large]")
            return
        self.images += 1
        self._flush()
        self.blocks.append(
            {"type": "image", "source": {"type": "base64", "media_type": mime, "data": b64}}
        )

    def _flush(self) -> None:
        if self._text:
            joined = clip_text("\n".join(self._text), self.max_chars)
            self.blocks.append({"type": "text", "text": joined})
            self._text = []

    def done(self) -> list[dict[str, Any]]:
        self._flush()
        if not self.blocks:
            self.blocks.append({"type": "text", "text": "(no output)"})
        elif self.blocks[0]["type"] != "text":
            self.blocks.insert(0, {"type": "text", "text": "(output images follow)"})
        return self.blocks


def add_bundle(
    blocks: ContentBlocks, bundle: dict[str, Any], label: str, max_chars: int, max_html: int
) -> None:
    """One output (MIME bundle) under `label`: its best text, then its images."""
    data = bundle.get("data") or {}
    text = _bundle_text(data, max_chars, max_html)
    blocks.text(f"{label}\n{text}" if text else label)
    for mime in IMAGE_MIMES:
        if mime in data:
            b64 = _image_b64(data[mime])
            if b64:
                blocks.image(mime, b64)


def error_of(result: ExecutionResult) -> BaseException | None:
    return result.error_before_exec or result.error_in_exec


def one_line(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    text = type(exc).__name__ + (f": {message[0]}" if message else "")
    return text if len(text) <= 200 else text[:197] + "..."


Tracebacks = list[tuple[type, BaseException, list[str]]]


def traceback_text(exc: BaseException, tracebacks: Tracebacks) -> str:
    """The traceback of `exc` as IPython showed it (ANSI colours removed), or
    Python's own, keeping the last `TRACEBACK_LINES` lines."""
    stb = next((s for _, e, s in reversed(tracebacks) if e is exc), None)
    if stb is None and tracebacks:
        stb = tracebacks[-1][2]
    if stb:
        text = strip_ansi("\n".join(stb))
    else:
        import traceback

        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    lines = [line for line in lines if line.strip("-")]  # IPython's rule line
    if len(lines) > TRACEBACK_LINES:
        cut = len(lines) - TRACEBACK_LINES
        lines = [f"[... {cut} earlier traceback lines left out ...]", *lines[cut:]]
    return "\n".join(lines)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def cell_outputs(
    cap: Captured, displays: list[dict[str, Any]], error: BaseException | None
) -> list[dict[str, Any]]:
    """nbformat outputs of a run, as the user would see them in a cell (no [stdout] labels)."""
    outputs: list[dict[str, Any]] = []
    for name, text in (("stdout", cap.stdout), ("stderr", cap.stderr)):
        if text:
            outputs.append({"output_type": "stream", "name": name, "text": text})
    for bundle in displays:
        outputs.append(
            {
                "output_type": "display_data",
                "data": dict(bundle.get("data") or {}),
                "metadata": dict(bundle.get("metadata") or {}),
            }
        )
    for bundle in cap.results:
        outputs.append(
            {
                "output_type": "execute_result",
                "data": dict(bundle.get("data") or {}),
                "metadata": dict(bundle.get("metadata") or {}),
                "execution_count": None,
            }
        )
    if error is not None:
        stb = next((s for _, e, s in reversed(cap.tracebacks) if e is error), None)
        outputs.append(
            {
                "output_type": "error",
                "ename": type(error).__name__,
                "evalue": str(error),
                "traceback": list(stb or [one_line(error)]),
            }
        )
    return outputs
