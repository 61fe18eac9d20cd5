"""The `.nbagent/` folder: saved conversations and replay recordings.

    .nbagent/
      conversations/<id>.json   one conversation (its history, redacted), rewritten
                                after each completed turn
      replay/<notebook>.json    the recorded model turns of one notebook's %%agent
                                cells, keyed by cell source and occurrence
      blobs/<sha256>            images and large outputs, stored once (see blobs.py)

Every text passes the redaction step before it is written, and every file is
written atomically. After each save the folder is kept under its size cap: the
oldest conversations go first (never the one being saved), then the oldest
recordings, and blobs nothing refers to any more.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..redact import redact, redact_obj
from .blobs import BlobStore, references
from .files import locked, read_json, write_json

log = logging.getLogger("nbagent.record")

FOLDER_NAME = ".nbagent"
FORMAT = 1
DIRECTORY_RECORDS = "_directory"  # the replay file of a directory's conversation


@dataclass
class SavedConversation:
    """One conversation as saved: `messages` is a valid Messages API history."""

    id: str
    notebook: str | None  # the notebook's file name, None for the directory's conversation
    messages: list[dict[str, Any]]
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    usage: dict[str, Any] = field(default_factory=dict)

    @property
    def turns(self) -> int:
        """The user's prompts in it (messages that are not only tool results)."""
        return sum(1 for m in self.messages if m.get("role") == "user" and _is_prompt(m))


@dataclass
class TurnRecording:
    """The model's side of one recorded `%%agent` turn.

    `responses[i]` answered request i; `tool_results[i]` are the fingerprints of the
    tool results request i carried (empty for the first request of the turn).
    """

    source: str  # the cell's raw source, before {var} interpolation
    occurrence: int  # how many times the same source ran before it in that run
    responses: list[dict[str, Any]] = field(default_factory=list)
    tool_results: list[list[str]] = field(default_factory=list)
    recorded_at: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        return recording_key(self.source, self.occurrence)


def recording_key(source: str, occurrence: int) -> str:
    return f"{hashlib.sha256(source.encode('utf-8')).hexdigest()[:32]}#{occurrence}"


def new_conversation_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]


class RecordStore:
    """One `.nbagent/` folder. `max_bytes` None: no size cap."""

    def __init__(self, folder: Path, *, max_bytes: int | None = None) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.blobs = BlobStore(folder / "blobs")

    @property
    def conversations_dir(self) -> Path:
        return self.folder / "conversations"

    @property
    def replay_dir(self) -> Path:
        return self.folder / "replay"

    # -- conversations --------------------------------------------------------

    def save_conversation(self, conversation: SavedConversation) -> None:
        """Write one conversation (redacted; blobs stored once), then apply the cap."""
        if not _safe_id(conversation.id):
            raise ValueError(f"bad conversation id {conversation.id!r}")
        messages = redact_obj(conversation.messages)
        # Under the lock: another kernel's clean-up must not take a blob written here
        # before the file that refers to it exists.
        with locked(self.folder):
            data = {
                "format": FORMAT,
                "id": conversation.id,
                "notebook": conversation.notebook,
                "created": conversation.created,
                "updated": conversation.updated,
                "usage": conversation.usage,
                "messages": self.blobs.externalize(messages),
            }
            write_json(self.conversations_dir / f"{conversation.id}.json", data)
        self.enforce_cap(keep_conversation=conversation.id)

    def load_conversation(self, conversation_id: str) -> SavedConversation | None:
        if not _safe_id(conversation_id):
            return None
        return self._read_conversation(self.conversations_dir / f"{conversation_id}.json")

    def latest_conversation(
        self, notebook: str | None, *, exclude: str | None = None
    ) -> SavedConversation | None:
        """The most recently updated conversation of `notebook` (None: of the directory)."""
        best: dict[str, Any] | None = None
        for path in self._conversation_files_newest_first():
            if path.stem == exclude:
                continue
            data = read_json(path)
            if not isinstance(data, dict) or data.get("notebook") != notebook:
                continue
            # By the time saved, not the file's: some file systems keep seconds only.
            if best is None or _updated(data) > _updated(best):
                best = data
        return self._from_data(best) if best is not None else None

    def _conversation_files_newest_first(self) -> list[Path]:
        if not self.conversations_dir.is_dir():
            return []
        files = [p for p in self.conversations_dir.glob("*.json") if _safe_id(p.stem)]
        return sorted(files, key=_mtime, reverse=True)

    def _read_conversation(self, path: Path) -> SavedConversation | None:
        data = read_json(path)
        return self._from_data(data) if isinstance(data, dict) else None

    def _from_data(self, data: dict[str, Any]) -> SavedConversation | None:
        messages = data.get("messages")
        if data.get("format") != FORMAT or not isinstance(messages, list):
            return None
        return SavedConversation(
            id=str(data.get("id")),
            notebook=data.get("notebook"),
            messages=self.blobs.internalize(messages),
            created=float(data.get("created") or 0),
            updated=float(data.get("updated") or 0),
            usage=dict(data.get("usage") or {}),
        )

    # -- replay recordings ----------------------------------------------------

    def save_recording(self, notebook: str | None, recording: TurnRecording) -> None:
        """Add (or replace) one recorded turn in the notebook's replay file."""
        responses = redact_obj(recording.responses)
        path = self._replay_file(notebook)
        with locked(self.folder):
            entry = {
                "source": redact(recording.source),
                "occurrence": recording.occurrence,
                "recorded_at": recording.recorded_at,
                "responses": self.blobs.externalize(responses),
                "tool_results": recording.tool_results,
            }
            data = self._replay_data(path)
            data["records"][recording.key] = entry
            write_json(path, data)
        self.enforce_cap()

    def find_recording(self, notebook: str | None, key: str) -> TurnRecording | None:
        """The recording for `key`: the notebook's own, else the directory's; when the
        notebook is not known (a headless run), the newest of any notebook here."""
        own = self._replay_file(notebook)
        entry = self._replay_data(own)["records"].get(key)
        if isinstance(entry, dict):
            return self._recording(entry)
        if notebook is not None:
            others = [self._replay_file(None)]
        elif self.replay_dir.is_dir():
            others = [p for p in self.replay_dir.glob("*.json") if p != own]
        else:
            others = []
        best: dict[str, Any] | None = None
        for path in others:
            entry = self._replay_data(path)["records"].get(key)
            if isinstance(entry, dict) and (best is None or _when(entry) > _when(best)):
                best = entry
        return self._recording(best) if best is not None else None

    def _recording(self, entry: dict[str, Any]) -> TurnRecording | None:
        responses = entry.get("responses")
        results = entry.get("tool_results")
        if not isinstance(responses, list) or not isinstance(results, list):
            return None
        return TurnRecording(
            source=str(entry.get("source", "")),
            occurrence=int(entry.get("occurrence") or 0),
            responses=self.blobs.internalize(responses),
            tool_results=[list(map(str, r)) for r in results],
            recorded_at=float(entry.get("recorded_at") or 0),
        )

    def _replay_file(self, notebook: str | None) -> Path:
        if notebook is None:
            return self.replay_dir / f"{DIRECTORY_RECORDS}.json"
        slug = re.sub(r"[^\w.-]+", "_", notebook)[:80]
        digest = hashlib.sha256(notebook.encode("utf-8")).hexdigest()[:8]
        return self.replay_dir / f"{slug}-{digest}.json"

    def _replay_data(self, path: Path) -> dict[str, Any]:
        data = read_json(path)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            data = {"format": FORMAT, "records": {}}
        if not isinstance(data.get("records"), dict):
            data["records"] = {}
        return data

    # -- size cap -------------------------------------------------------------

    def size(self) -> int:
        total = 0
        if self.folder.is_dir():
            for path in self.folder.rglob("*"):
                try:
                    if path.is_file():
                        total += path.stat().st_size
                except OSError:
                    continue
        return total

    def enforce_cap(self, keep_conversation: str | None = None) -> None:
        """Bring the folder under `max_bytes`: oldest conversations first (never
        `keep_conversation`), then the oldest recordings, with the blobs that nothing
        refers to any more."""
        if self.max_bytes is None or self.size() <= self.max_bytes:
            return
        with locked(self.folder):
            size = self.size()
            conversations = self._conversation_files_newest_first()
            refs = {p: references(read_json(p)) for p in conversations}
            if self.replay_dir.is_dir():
                refs.update({p: references(read_json(p)) for p in self.replay_dir.glob("*.json")})
            size = self._drop_orphan_blobs(size, refs)
            for path in reversed(conversations):
                if size <= self.max_bytes:
                    return
                if path.stem != keep_conversation:
                    size -= _unlink(path)
                    refs.pop(path, None)
                    size = self._drop_orphan_blobs(size, refs)
            for path, key in self._recordings_oldest_first():
                if size <= self.max_bytes:
                    return
                data = self._replay_data(path)
                data["records"].pop(key, None)
                before = _size_of(path)
                write_json(path, data)
                size -= before - _size_of(path)
                refs[path] = references(data)
                size = self._drop_orphan_blobs(size, refs)
        if size > self.max_bytes:
            log.warning(
                "nbagent: %s holds %.1f MB, over its cap of %.1f MB, with only the current "
                "conversation left (raise NBAgent.record_max_mb)",
                self.folder,
                size / 1e6,
                self.max_bytes / 1e6,
            )

    def _recordings_oldest_first(self) -> list[tuple[Path, str]]:
        found: list[tuple[float, Path, str]] = []
        if self.replay_dir.is_dir():
            for path in self.replay_dir.glob("*.json"):
                for key, entry in self._replay_data(path)["records"].items():
                    found.append((_when(entry), path, key))
        return [(path, key) for _, path, key in sorted(found, key=lambda f: f[0])]

    def _drop_orphan_blobs(self, size: int, refs: dict[Path, set[str]]) -> int:
        used = set().union(*refs.values()) if refs else set()
        for digest in self.blobs.digests():
            if digest not in used:
                size -= self.blobs.remove(digest)
        return size


def _updated(data: dict[str, Any]) -> float:
    try:
        return float(data.get("updated") or 0)
    except (TypeError, ValueError):
        return 0.0


def _when(entry: Any) -> float:
    try:
        return float(entry.get("recorded_at") or 0) if isinstance(entry, dict) else 0.0
    except (TypeError, ValueError):
        return 0.0


def _is_prompt(message: dict[str, Any]) -> bool:
    content = message.get("content")
    if isinstance(content, str):
        return True
    return any(isinstance(b, dict) and b.get("type") != "tool_result" for b in content or [])


def _safe_id(name: str) -> bool:
    return bool(re.fullmatch(r"[\w.-]{1,100}", name)) and not name.startswith(".")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return 0.0


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _unlink(path: Path) -> int:
    size = _size_of(path)
    try:
        path.unlink()
    except OSError:
        return 0
    return size
