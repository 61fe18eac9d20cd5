"""Extra faults for the fake Messages API: a malformed SSE event mid-stream.

``FakeAnthropic`` (tests/fake_anthropic.py) can cut a stream but not corrupt
one. ``FaultyAnthropic`` is the same server with one more scripted response::

    with FaultyAnthropic() as server:
        server.enqueue(malformed(reply(text("partial answer")), after_events=4))

streams the first ``after_events`` events of the reply, then one event whose
``data`` is not what the API sends (truncated JSON by default), then the rest
of the reply, as a server or proxy that garbles one event would.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from tests.fake_anthropic import FakeAnthropic, Reply, _Handler, _Rendered, text

TRUNCATED_JSON = '{"type": "content_block_delta", "index": 0, "delta": {"type": "text_de'


@dataclass(frozen=True)
class Malformed(Reply):
    """A reply with one bad event inserted after its first ``after_events`` events."""

    after_events: int = 3
    event: str = "content_block_delta"
    data: str = TRUNCATED_JSON


def malformed(
    reply: Reply | str,
    after_events: int,
    data: str = TRUNCATED_JSON,
    event: str = "content_block_delta",
) -> Malformed:
    r = Reply(blocks=(text(reply),), stop_reason="end_turn") if isinstance(reply, str) else reply
    return Malformed(
        blocks=r.blocks,
        stop_reason=r.stop_reason,
        usage=r.usage,
        delay=r.delay,
        model=r.model,
        after_events=after_events,
        event=event,
        data=data,
    )


class _FaultyHandler(_Handler):
    server: Any

    def _stream(self, rendered: _Rendered, delay: float, limit: int | None) -> None:
        fault = getattr(self.server.fake._current, "response", None)
        if not isinstance(fault, Malformed):
            super()._stream(rendered, delay, limit)
            return
        events = [(name, json.dumps(data)) for name, data in rendered.events]
        events.insert(fault.after_events, (fault.event, fault.data))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for name, data in events:
                self._write_chunk(f"event: {name}\ndata: {data}\n\n".encode())
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client stops at the bad event
            self.close_connection = True


class FaultyAnthropic(FakeAnthropic):
    """``FakeAnthropic`` that also plays ``Malformed`` replies."""

    def __init__(self, start: bool = True) -> None:
        self._current = threading.local()  # the response of the request this thread serves
        super().__init__(start=start)

    def start(self) -> FaultyAnthropic:
        super().start()
        assert self._httpd is not None
        self._httpd.RequestHandlerClass = _FaultyHandler
        return self

    def _next_response(self, body: dict[str, Any]) -> Any:
        response = super()._next_response(body)
        self._current.response = response
        return response
