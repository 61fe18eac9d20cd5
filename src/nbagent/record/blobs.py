"""Images and large outputs, stored once by content hash and referenced.

A conversation is saved after every turn, and a figure or a long table stays in it
for the rest of the session; writing them again each time would make the folder
grow with the square of the session. `externalize` moves image data and long
strings into `blobs/<sha256>` (written only if absent) and leaves a reference
`{"$blob": "<sha256>"}` in their place; `internalize` puts them back.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .files import write_atomic

log = logging.getLogger("nbagent.record")

REF = "$blob"
LARGE_TEXT = 4096  # characters: strings at least this long are stored as blobs
MISSING_IMAGE = "[an image of this conversation is no longer stored]"
MISSING_TEXT = "[this output is no longer stored]"


class BlobStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, digest: str) -> Path:
        return self.folder / digest

    def put(self, text: str) -> str:
        data = text.encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        path = self.path(digest)
        if not path.exists():  # same content, same name: nothing to write again
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
        return digest

    def get(self, digest: str) -> str | None:
        if not _is_digest(digest):
            return None
        try:
            return self.path(digest).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def digests(self) -> Iterable[str]:
        if not self.folder.is_dir():
            return []
        return [p.name for p in self.folder.iterdir() if _is_digest(p.name)]

    def remove(self, digest: str) -> int:
        """Delete one blob; the bytes freed."""
        path = self.path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
        except OSError:
            return 0
        return size

    # -- the walk ---------------------------------------------------------------

    def externalize(self, obj: Any) -> Any:
        """A copy of `obj` with image data and long strings replaced by references."""
        if isinstance(obj, str):
            return {REF: self.put(obj)} if len(obj) >= LARGE_TEXT else obj
        if isinstance(obj, list):
            return [self.externalize(x) for x in obj]
        if isinstance(obj, dict):
            if obj.get("type") == "base64" and isinstance(obj.get("data"), str):
                return {**obj, "data": {REF: self.put(obj["data"])}}  # image / PDF data
            return {k: self.externalize(v) for k, v in obj.items()}
        return obj

    def internalize(self, obj: Any) -> Any:
        """`obj` with every reference replaced by its blob (a placeholder if it is gone)."""
        if isinstance(obj, list):
            return [self.internalize(x) for x in obj]
        if not isinstance(obj, dict):
            return obj
        if _is_ref(obj):
            found = self.get(obj[REF])
            return found if found is not None else MISSING_TEXT
        if obj.get("type") in ("image", "document"):
            source = obj.get("source")
            if isinstance(source, dict) and _is_ref(source.get("data")):
                data = self.get(source["data"][REF])
                if data is None:  # evicted or damaged: a valid block that says so
                    log.warning("nbagent: a stored image is missing; it is left out")
                    return {"type": "text", "text": MISSING_IMAGE}
                return {**obj, "source": {**source, "data": data}}
        return {k: self.internalize(v) for k, v in obj.items()}


def references(obj: Any) -> set[str]:
    """Every blob digest `obj` (an externalized structure) refers to."""
    found: set[str] = set()
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if _is_ref(item):
                found.add(item[REF])
            else:
                stack.extend(item.values())
    return found


def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(REF), str)


def _is_digest(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)
