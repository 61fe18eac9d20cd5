"""A real IPython kernel driven over the Jupyter protocol, for end-to-end tests."""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import KernelManager


@dataclass
class Execution:
    reply: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)
    iopub_bytes: int = 0

    @property
    def status(self) -> str:
        return self.reply["content"]["status"]

    def error_text(self) -> str:
        import re

        tb = "\n".join(self.reply["content"].get("traceback", []))
        return re.sub(r"\x1b\[[0-9;]*m", "", tb)[-3000:]

    def text(self) -> str:
        """Everything a person would read: streams, final displays, errors."""
        parts = []
        for out in self.final_outputs():
            kind = out["msg_type"]
            content = out["content"]
            if kind == "stream":
                parts.append(content["text"])
            elif kind in ("display_data", "execute_result"):
                parts.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                parts.append(f"{content['ename']}: {content['evalue']}")
        return "\n".join(parts)

    def final_outputs(self) -> list[dict[str, Any]]:
        """Outputs as they stand at the end: update_display_data applied in place."""
        final: list[dict[str, Any]] = []
        by_id: dict[str, int] = {}
        for out in self.outputs:
            kind = out["msg_type"]
            display_id = out["content"].get("transient", {}).get("display_id")
            if kind == "update_display_data":
                if display_id in by_id:
                    final[by_id[display_id]] = {**out, "msg_type": "display_data"}
                continue
            if kind == "clear_output":
                final.clear()
                by_id.clear()
                continue
            if display_id:
                by_id[display_id] = len(final)
            final.append(out)
        return final


class LiveKernel:
    """Start a python3 kernel with the test's environment; stop it by its manager."""

    def __init__(
        self, cwd: str, env: dict[str, str] | None = None, extra_arguments: list[str] | None = None
    ) -> None:
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=cwd, env=env, extra_arguments=extra_arguments or [])
        self.client = self.km.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def execute(self, code: str, *, timeout: float = 60, allow_stdin: bool = False) -> Execution:
        msg_id = self.client.execute(code, allow_stdin=allow_stdin, store_history=True)
        return self.collect(msg_id, timeout=timeout)

    def collect(self, msg_id: str, *, timeout: float = 60) -> Execution:
        deadline = time.monotonic() + timeout
        outputs: list[dict[str, Any]] = []
        nbytes = 0
        idle = False
        while not idle:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"no idle status within {timeout}s; outputs so far: {outputs[-3:]}"
                )
            try:
                msg = self.client.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "status":
                idle = msg["content"]["execution_state"] == "idle"
                continue
            if kind in (
                "stream",
                "display_data",
                "update_display_data",
                "execute_result",
                "error",
                "clear_output",
            ):
                outputs.append(msg)
                nbytes += _content_bytes(msg)
        while True:
            reply = self.client.get_shell_msg(timeout=max(1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                return Execution(reply, outputs, nbytes)

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    def stop(self) -> None:
        self.client.stop_channels()
        self.km.shutdown_kernel(now=True)


def _content_bytes(msg: dict[str, Any]) -> int:
    import json

    return len(json.dumps(msg["content"]).encode())
