"""Recording model turns, and replaying them instead of sending requests.

Both are provider wrappers, so the loop does not know about them:
- `RecordingProvider(inner, recorder)` passes each request to `inner` and notes the
  response (content, stop reason, model, usage) and the fingerprints of the tool
  results the request carried (see `fingerprint.py`).
- `ReplayProvider(recording, mismatch=..., live=...)` answers each request from a
  recording, without any HTTP, after checking that the tool results the request
  carries (the tools ran for real) are those recorded. When one differs it raises
  `ReplayMismatchError` (`mismatch="stop"`), or sends this request and the rest of
  the turn to `live` (`mismatch="live"`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Generator
from typing import Any

from ..errors import ReplayMismatchError
from ..events import Event, Notice, TextDelta, ThinkingDelta, ToolCallStart, ToolInputDelta
from ..providers.base import ModelResponse, Provider, take_partial
from .fingerprint import request_tool_results
from .store import TurnRecording

MISMATCH_HINT = (
    "Set NBAgent.replay_mismatch = 'live' to continue live from there, or "
    "NBAgent.replay = 'off' to ask the model again."
)


def response_record(response: ModelResponse) -> dict[str, Any]:
    """What a recording keeps of one response."""
    return {
        "content": copy.deepcopy(response.content),
        "stop_reason": response.stop_reason,
        "model": response.model,
        "usage": {
            "input_tokens": response.input_tokens,
            "output_tokens": response.output_tokens,
            "cache_creation_input_tokens": response.cache_creation_input_tokens,
            "cache_read_input_tokens": response.cache_read_input_tokens,
        },
    }


class TurnRecorder:
    """Collects one turn's recording as its requests and responses go by."""

    def __init__(self, source: str, occurrence: int) -> None:
        self.recording = TurnRecording(source=source, occurrence=occurrence)
        self.complete = True  # False once a request failed: the recording has a gap

    def on_request(self, params: dict[str, Any]) -> None:
        self.recording.tool_results.append([f for _, _, f in request_tool_results(params)])

    def on_response(self, response: ModelResponse) -> None:
        self.recording.responses.append(response_record(response))

    def on_failure(self) -> None:
        self.complete = False


class RecordingProvider:
    """`inner`, with each request and response noted by `recorder`."""

    def __init__(self, inner: Provider, recorder: TurnRecorder) -> None:
        self.inner = inner
        self.recorder = recorder

    @property
    def needs_key(self) -> bool:
        return bool(getattr(self.inner, "needs_key", True))

    def stream(self, params: dict[str, Any]) -> Generator[Event, None, ModelResponse]:
        self.recorder.on_request(params)
        try:
            response = yield from self.inner.stream(params)
        except BaseException:
            self.recorder.on_failure()
            raise
        self.recorder.on_response(response)
        return response

    def take_partial(self) -> ModelResponse | None:
        return take_partial(self.inner)


class ReplayProvider:
    """Answers requests from `recording`; see the module docstring.

    `live` is the provider to continue with after a mismatch (`mismatch="live"`);
    None when there is none (no API key), and then a mismatch stops the turn.
    """

    needs_key = False  # no request is sent while replaying

    def __init__(
        self,
        recording: TurnRecording,
        *,
        mismatch: str = "stop",
        live: Provider | None = None,
        where: str = ".nbagent/",
    ) -> None:
        if mismatch not in ("stop", "live"):
            raise ValueError(f"mismatch must be 'stop' or 'live', got {mismatch!r}")
        self.recording = recording
        self.mismatch = mismatch
        self.live = live
        self.where = where
        self.replayed = 0  # responses answered from the recording
        self.went_live = False

    def stream(self, params: dict[str, Any]) -> Generator[Event, None, ModelResponse]:
        if self.went_live:
            assert self.live is not None
            return (yield from self.live.stream(params))
        problem = self._mismatch(params)
        if problem is not None:
            if self.mismatch == "live" and self.live is not None:
                self.went_live = True
                yield Notice(f"{problem} Continuing live from here.", "warning")
                return (yield from self.live.stream(params))
            if self.mismatch == "live":
                problem += " It cannot continue live: no API key is set."
            raise ReplayMismatchError(f"{problem} {MISMATCH_HINT}")
        recorded = self.recording.responses[self.replayed]
        self.replayed += 1
        content: list[dict[str, Any]] = copy.deepcopy(recorded.get("content") or [])
        yield from _events_of(content)
        if self.replayed == len(self.recording.responses):
            yield Notice(self.summary(), "info")
        # Nothing was sent, so nothing is billed: the usage of a replayed response is zero.
        return ModelResponse(
            content=content,
            stop_reason=str(recorded.get("stop_reason") or "end_turn"),
            model=str(recorded.get("model") or ""),
        )

    def summary(self) -> str:
        n = self.replayed
        return (
            f"Replayed {n} recorded model turn{'s' if n != 1 else ''} from {self.where} "
            "(no request sent; the tools ran for real)."
        )

    def take_partial(self) -> ModelResponse | None:
        return take_partial(self.live) if self.went_live and self.live is not None else None

    def _mismatch(self, params: dict[str, Any]) -> str | None:
        """Why this request is not the recorded one, or None when it is."""
        index = self.replayed
        if index >= len(self.recording.responses):
            return (
                f"Replay stopped: the turn asked the model for response {index + 1}, but the "
                f"recording of this cell has {len(self.recording.responses)}."
            )
        recorded = self.recording.tool_results
        expected = recorded[index] if index < len(recorded) else []
        found = request_tool_results(params)
        if [f for _, _, f in found] == expected:
            return None
        for position, (name, _, fingerprint) in enumerate(found):
            if position >= len(expected) or fingerprint != expected[position]:
                return (
                    f"Replay stopped: the result of {name} (tool call {position + 1} before "
                    f"model turn {index + 1}) differs from its recording, so the notebook's "
                    "data or code changed since it was recorded."
                )
        return (
            f"Replay stopped: model turn {index + 1} was recorded after {len(expected)} tool "
            f"results, and this run has {len(found)}."
        )


def _events_of(content: list[dict[str, Any]]) -> Generator[Event, None, None]:
    """The stream events a provider would have sent for `content`."""
    for block in content:
        kind = block.get("type")
        if kind == "thinking" and block.get("thinking"):
            yield ThinkingDelta(str(block["thinking"]))
        elif kind == "text" and block.get("text"):
            yield TextDelta(str(block["text"]))
        elif kind == "tool_use":
            call_id = str(block.get("id", ""))
            yield ToolCallStart(call_id, str(block.get("name", "")))
            yield ToolInputDelta(call_id, json.dumps(block.get("input") or {}))


class AnnouncingProvider:
    """`inner`, with `notices` (a restored conversation, a failed save) shown as the
    first events of the turn's first response."""

    def __init__(self, inner: Provider, notices: list[Notice]) -> None:
        self.inner = inner
        self.notices = list(notices)

    @property
    def needs_key(self) -> bool:
        return bool(getattr(self.inner, "needs_key", True))

    def stream(self, params: dict[str, Any]) -> Generator[Event, None, ModelResponse]:
        notices, self.notices = self.notices, []
        yield from notices
        return (yield from self.inner.stream(params))

    def take_partial(self) -> ModelResponse | None:
        return take_partial(self.inner)
