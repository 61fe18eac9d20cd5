"""Which files the file tools refuse to touch because they hold credentials.

One place for the patterns and the matcher, so the tools that read, write or
delete files and the one that describes them (`get_file_info`) agree on what
counts as a secret file.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from .base import ToolError

DEFAULT_SECRET_FILE_PATTERNS: tuple[str, ...] = (
    ".env",
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.ppk",
    "*.kdbx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".my.cnf",
    "credentials*",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".htpasswd",
    ".boto",
    ".s3cfg",
    "secrets.toml",
    ".docker/config.json",
    ".kube/config",
)
"""File names the file tools refuse to touch (fnmatch, case-insensitive). A pattern
with a "/" matches the end of the path inside the workspace, e.g. ".kube/config"."""


class SecretFiles:
    """Which paths the file tools refuse because they hold credentials."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(p.lower() for p in patterns)

    def match(self, parts: Iterable[str]) -> str | None:
        """The pattern that `parts` (a path's components) matches, if any."""
        names = [p.lower() for part in parts for p in part.split("/") if p not in ("", ".")]
        if not names:
            return None
        for pattern in self.patterns:
            depth = pattern.count("/") + 1
            tail = "/".join(names[-depth:])
            if len(names) >= depth and fnmatch.fnmatchcase(tail, pattern):
                return pattern
        return None

    def refuse(self, given: str, parts: Iterable[str], action: str) -> None:
        pattern = self.match(parts)
        if pattern is not None:
            raise ToolError(
                f"Refusing to {action} '{given}': it looks like a secret file (it matches "
                f"'{pattern}'), and the file tools never read, write or delete secret files."
            )
