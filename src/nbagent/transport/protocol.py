"""The kernel <-> frontend protocol's one definition: `protocol.schema.json`.

The schema (JSON Schema, draft 2020-12) defines every message on the two comms,
in both directions, and the loop events inside `agent_event`. The TypeScript
types of the labextension are generated from it (scripts/gen_protocol_ts.py),
and tests validate what the kernel really sends against it.

Validation needs `jsonschema` and reads the schema file, so nothing here is
loaded until asked: the bridge only checks messages when the environment
variable NBAGENT_PROTOCOL_DEBUG is set, and then only logs what is wrong.

    validate_message({"v": 5, "type": "stop"})            # passes
    validate_message(data, sender="kernel")               # ProtocolError if invalid
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

PROTOCOL_VERSION = 5  # == $defs.Version.const in the schema (a contract test checks it)
EVENTS_TARGET = "nbagent.events"
CONTROL_TARGET = "nbagent.control"
SCHEMA_FILE = "protocol.schema.json"
DEBUG_ENV = "NBAGENT_PROTOCOL_DEBUG"

Sender = Literal["kernel", "frontend"]
_SENDER_DEF: dict[str, str] = {"kernel": "KernelMsg", "frontend": "ControlMsg"}

log = logging.getLogger("nbagent.protocol")


class ProtocolError(ValueError):
    """A message does not match the protocol schema."""


@functools.cache
def load_schema() -> dict[str, Any]:
    """The protocol schema, read from the package once."""
    text = Path(__file__).with_name(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator(definition: str | None) -> Any:
    import jsonschema

    schema = load_schema()
    if definition is not None:
        # A reference into the full schema, so every `$ref` still resolves.
        schema = {**schema, "oneOf": [{"$ref": f"#/$defs/{definition}"}]}
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate_message(
    msg: Any, sender: Sender | None = None, *, definition: str | None = None
) -> None:
    """Raise ProtocolError unless `msg`, as it goes on the wire (JSON), matches the schema.

    `sender` narrows it to the kernel's (events comm) or the frontend's (control
    comm) messages; `definition` to one `$defs` entry (e.g. "TurnOutput").
    """
    import jsonschema

    name = definition or (_SENDER_DEF[sender] if sender else None)
    # What the comm carries: tuples become lists, and a non-JSON value fails here.
    wire = json.loads(json.dumps(msg))
    errors = list(_validator(name).iter_errors(wire))
    if errors:
        best = _explain(max(errors, key=jsonschema.exceptions.relevance))
        where = "/".join(str(p) for p in best.absolute_path) or "(message)"
        raise ProtocolError(
            f"{where}: {best.message} (protocol v{PROTOCOL_VERSION}, {name or 'any message'})"
        )


# Keys whose `const` tells the alternatives of a `oneOf` apart (message, event, op, reply).
_DISCRIMINATORS = frozenset({"type", "op", "ok"})


def _explain(error: Any) -> Any:
    """The error inside the one alternative the message claims to be, not "is not
    valid under any of the given schemas": the branch of a `oneOf` whose `type`
    (or `op`, `ok`) matched, followed down as far as it goes."""
    import jsonschema

    while error.context:
        claimed = [errs for errs in _branches(error) if _claims(errs)]
        if len(claimed) != 1:
            break
        # best_match would descend by its own guess; pick at this level only.
        error = max(claimed[0], key=jsonschema.exceptions.relevance)
    return error


def _branches(error: Any) -> list[list[Any]]:
    """The errors of a `oneOf`/`anyOf` error, one list per alternative."""
    branches: dict[Any, list[Any]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    return list(branches.values())


def _claims(errors: list[Any]) -> bool:
    """An alternative the instance claims to be: no `type` (`op`, `ok`) says otherwise,
    and a nested `oneOf` among its errors has such an alternative itself."""
    for e in errors:
        path = list(e.relative_path)
        if e.validator == "const" and len(path) == 1 and path[0] in _DISCRIMINATORS:
            return False
        if e.context and not path and not any(_claims(b) for b in _branches(e)):
            return False
    return True


def debug_enabled() -> bool:
    """Validate every message the bridge sends and receives (NBAGENT_PROTOCOL_DEBUG=1)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def check_message(msg: Any, sender: Sender) -> None:
    """Log, never raise, when `msg` breaks the protocol (the bridge's debug mode)."""
    try:
        validate_message(msg, sender)
    except ProtocolError as exc:
        log.warning("nbagent protocol: %s message does not match the schema: %s", sender, exc)
    except Exception:  # jsonschema missing, or a bug here: never break the bridge
        log.warning("nbagent protocol: could not validate a %s message", sender, exc_info=True)


__all__ = [
    "CONTROL_TARGET",
    "EVENTS_TARGET",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "check_message",
    "debug_enabled",
    "load_schema",
    "validate_message",
]
