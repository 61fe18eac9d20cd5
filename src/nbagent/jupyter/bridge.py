"""Entry points the JupyterLab extension calls by module name (`nbagent.jupyter.bridge`).

The transport itself lives in `nbagent.transport.bridge`; this module keeps the
names the frontend runs stable across releases.
"""

from __future__ import annotations

import json
from typing import Any

from ..transport import bridge as _transport
from ..transport.bridge import get_bridge
from ..transport.protocol import PROTOCOL_VERSION


def listen() -> int:
    """Let frontends register, without loading the extension; the protocol version.

    The labextension evaluates this, silently, when it attaches to a kernel, then
    opens its control comm (docs/protocol.md, Handshake). It only registers the
    control comm's target: nothing is published, and no magic is defined. 0 outside a
    Jupyter kernel. A client that registers is sent the conversation it continues
    (after a kernel restart: the one saved in `.nbagent/`), see `sidebar.attach`.
    """
    bridge = get_bridge()
    if bridge is None:
        return 0
    from IPython import get_ipython

    from .sidebar import attach

    attach(get_ipython(), bridge)
    return PROTOCOL_VERSION


def announce() -> None:
    """Say hello on a fresh events comm, if nbagent is already listening.

    Only labextensions of protocol v2 run this (they waited for the kernel to speak
    first); the hello tells them this kernel speaks another version.
    """
    existed = _transport._BRIDGE is not None
    bridge = get_bridge()
    if bridge is not None and existed:
        bridge.announce()


def sidebar_turn(payload: str) -> Any:
    """Run a prompt sent by the JupyterLab sidebar (a JSON string, see docs/protocol.md)."""
    bridge = get_bridge()
    if bridge is None:
        raise RuntimeError("nbagent's sidebar needs a Jupyter kernel.")
    data = json.loads(payload)
    if bridge._sidebar_handler is None:
        raise RuntimeError("nbagent is not loaded in this kernel: run %load_ext nbagent first.")
    return bridge._sidebar_handler(data)
