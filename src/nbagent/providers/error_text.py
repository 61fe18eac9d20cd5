"""The parts of a one-line API error message every provider's SDK errors share.

`loop.describe_error` (Anthropic) and `openai_compat.describe_openai_error` word their
status codes their own way, but read the message, the endpoint and the network
reason the same way, so a failure reads the same whatever the provider.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit


def api_message(exc: Any) -> str:
    """The API's own error message, else the SDK's."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)  # some SDKs unwrap {"error": {...}} for status errors
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(exc, "message", "") or exc)


def sentences(*parts: str) -> str:
    """Parts joined as sentences, each ending in exactly one full stop."""
    return " ".join(p.strip().rstrip(".").strip() + "." for p in parts if p.strip())


def endpoint_of(exc: Any, model: str | None) -> tuple[str, str | None]:
    """The URL the failed request went to (without credentials or query) and its model
    (from the request body, else `model`)."""
    request = getattr(exc, "request", None)
    url = ""
    raw = str(getattr(request, "url", "") or "")
    if "://" in raw:
        parts = urlsplit(raw)
        host = parts.netloc.rpartition("@")[2]  # never show user:password@
        url = f"{parts.scheme}://{host}{parts.path or '/'}"
    found = None
    try:
        body = json.loads(request.content)  # type: ignore[union-attr]
        found = body.get("model") if isinstance(body, dict) else None
    except Exception:  # no request, a streamed body, not JSON
        pass
    return url, found if isinstance(found, str) and found else model


def connection_reason(exc: BaseException) -> str:
    """What the network layer said ("connection refused"), not the SDK's "Connection error."."""
    message = str(getattr(exc, "message", "") or "")
    cause = exc.__cause__ or exc.__context__
    if message and message not in ("Connection error.", "Request timed out."):
        text = message  # nbagent's own words: a stream cut off, a malformed event
    else:
        text = str(cause).strip() if cause is not None else ""
        if not text and cause is not None:
            text = type(cause).__name__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text) or "the connection failed"
    return text[0].lower() + text[1:]


def never_connected(exc: BaseException) -> bool:
    """The request never reached a server (refused, unknown host, unreachable)."""
    cause = exc.__cause__ or exc.__context__
    return type(cause).__name__ == "ConnectError"  # httpx's, whichever httpx the SDK uses
