"""What one turn changed, as the records the recorder keeps and revert reads.

Cells, files and the user's variables, each with what was there before: a `*Token` is
taken just before a change, a `*Change` is kept once it succeeded, and a `TurnRecord`
holds one turn's changes. `Recorder` (records.py) builds them; `revert.py` shows and
undoes them.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, Literal

from . import snapshot as snap

# A value without weakrefs is held for the identity check up to this many bytes.
STRONG_AFTER_MAX = 1024 * 1024


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


# -- cells ------------------------------------------------------------------------------


@dataclass
class CellToken:
    """A cell as it was just before the agent changed or deleted it."""

    doc: Any
    path: str
    cell_id: str
    source: str | None
    cell_type: str
    after_cell_id: str | None  # the cell before it (None: it was the first)
    problem: str | None = None


@dataclass
class CellChange:
    kind: Literal["edit", "insert", "delete"]
    doc: Any
    path: str
    cell_id: str
    cell_type: str
    before: str | None  # None for an insert
    after: str | None  # None for a delete
    after_cell_id: str | None = None
    problem: str | None = None


# -- files ------------------------------------------------------------------------------


@dataclass
class TreeEntry:
    rel: str
    kind: Literal["file", "dir", "link"]
    data: bytes | None = None
    target: str | None = None
    mode: int | None = None


@dataclass
class FileState:
    """What was at a path: nothing, a file (its bytes), a directory (maybe its whole
    tree), or a symlink. `data` may be dropped (too large) while `digest` stays."""

    kind: Literal["absent", "file", "dir", "link"]
    data: bytes | None = None
    digest: str | None = None
    mode: int | None = None
    target: str | None = None
    tree: list[TreeEntry] | None = None

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        return sum(len(e.data or b"") for e in self.tree or [])

    def same_as(self, other: FileState) -> bool:
        if self.kind != other.kind:
            return False
        if self.kind == "file":
            return self.digest == other.digest
        if self.kind == "link":
            return self.target == other.target
        return True


@dataclass
class FileToken:
    path: str
    display: str
    before: FileState
    problem: str | None = None


@dataclass
class FileChange:
    path: str
    display: str
    before: FileState
    after: FileState
    problem: str | None = None  # why the content before cannot be restored

    @property
    def kind(self) -> str:
        if self.before.kind == "absent":
            return "created"
        if self.after.kind == "absent":
            return "deleted"
        return "changed"


# -- variables --------------------------------------------------------------------------


class ValueRef:
    """Recognises a value later by identity without keeping it alive where possible."""

    def __init__(self, value: Any) -> None:
        self.absent = value is ABSENT
        self.id = id(value)
        self.type = type(value)
        self._weak: weakref.ref[Any] | None = None
        self._strong: Any = None
        self.exact = True
        if self.absent:
            return
        try:
            self._weak = weakref.ref(value)
        except TypeError:
            if snap.size_of(value) <= STRONG_AFTER_MAX:
                self._strong = value
            else:
                self.exact = False  # id and type only

    def is_value(self, value: Any) -> bool:
        if self.absent:
            return value is ABSENT
        if self._weak is not None:
            return self._weak() is value
        if self.exact:
            return self._strong is value
        return id(value) == self.id and type(value) is self.type

    def in_namespace(self, namespace: dict[str, Any], name: str) -> bool:
        return self.is_value(namespace.get(name, ABSENT))

    def same_target(self, other: ValueRef) -> bool:
        """Both refer to the same value."""
        if self.absent or other.absent:
            return self.absent and other.absent
        if self._weak is not None:
            value = self._weak()
            return value is not None and other.is_value(value)
        if self.exact:
            return other.is_value(self._strong)
        return self.id == other.id and self.type is other.type


@dataclass
class VariableChange:
    name: str
    namespace: dict[str, Any]
    before: Any  # the value to put back (the object itself, or a copy); ABSENT if created
    before_desc: str
    after: ValueRef
    after_desc: str
    mutated: bool = False  # the object was changed in place (`before` is a copy)
    created: bool = False  # the name did not exist before the turn
    original: ValueRef | None = None  # the object `before` stands for, when it is a copy
    size: int = 0  # bytes the record keeps alive
    problem: str | None = None

    @property
    def kind(self) -> str:
        if self.created:
            return "created"
        if self.after.absent:
            return "deleted"
        return "changed in place" if self.mutated else "rebound"


@dataclass
class PythonToken:
    namespace: dict[str, Any]
    refs: dict[str, Any]  # every tracked name's value before the run
    names: snap.CodeNames | None
    copies: dict[str, tuple[Any, int]]  # name -> (copy, size)
    fingerprints: dict[str, bytes]
    uncopied: dict[str, str]  # name -> why no copy was taken
    hidden: Container[str]
    turn: TurnRecord
    failed: bool = False  # recording failed before the run: nothing is recorded after it


# -- turns ------------------------------------------------------------------------------


@dataclass
class TurnRecord:
    number: int
    label: str
    limit: int  # bytes of snapshots this turn may keep
    started: float = field(default_factory=time.time)
    cells: list[CellChange] = field(default_factory=list)
    files: dict[str, FileChange] = field(default_factory=dict)
    variables: dict[str, VariableChange] = field(default_factory=dict)
    undone: bool = False

    @property
    def used(self) -> int:
        kept = sum(c.before.size for c in self.files.values())
        return kept + sum(v.size for v in self.variables.values())

    @property
    def empty(self) -> bool:
        return not (self.cells or self.files or self.variables)
