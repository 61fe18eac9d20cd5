"""Recording and replaying model turns: provider wrappers on a real Agent, the fake API."""

from __future__ import annotations

import random

import pytest

from nbagent import Agent, tool
from nbagent.errors import ReplayMismatchError
from nbagent.events import Notice, TextDelta, ToolResultEvent
from nbagent.pump import pump
from nbagent.record.fingerprint import image_size, mask_text, tool_result_fingerprint
from nbagent.record.replay import RecordingProvider, ReplayProvider, TurnRecorder
from nbagent.record.store import RecordStore, TurnRecording, recording_key
from tests.fake_anthropic import FakeAnthropic, error, reply, text, thinking, tool_use
from tests.helpers import assert_valid_history, result_text, tool_results
from tests.test_record import png

pytestmark = pytest.mark.usefixtures("in_tmp")

measured: dict[str, object] = {"value": "42", "runs": 0}


@tool(read_only=True)
def measure(name: str) -> str:
    """Measure a quantity.

    Args:
        name: what to measure
    """
    measured["runs"] = int(measured["runs"]) + 1  # type: ignore[call-overload]
    # What changes on every run: an address and a timing.
    return (
        f"{name} = {measured['value']} "
        f"(<Probe object at {hex(id(object()))}>, took {random.random():.4f} s)"
    )


@tool(category="execute")
def guarded(name: str) -> str:
    """Needs approval.

    Args:
        name: anything
    """
    return name


@pytest.fixture(autouse=True)
def _reset_measure():
    measured.update(value="42", runs=0)


SOURCE = "%%agent\nmeasure x"


def record_turn(server: FakeAnthropic, tmp_path) -> TurnRecording:
    """One recorded turn (thinking, text, a tool call, the answer), through the store."""
    server.enqueue(
        reply(thinking("Measure it."), text("Measuring."), tool_use("measure", {"name": "x"})),
        "x is 42.",
    )
    recorder = TurnRecorder(SOURCE, 0)
    agent = Agent(tools=[measure])
    agent.session.provider_wrapper = lambda provider, settings: RecordingProvider(
        provider, recorder
    )
    assert agent.run("measure x").text == "x is 42."
    assert recorder.complete and len(recorder.recording.responses) == 2
    assert recorder.recording.tool_results[0] == []  # the first request answers nothing
    assert len(recorder.recording.tool_results[1]) == 1
    store = RecordStore(tmp_path / ".nbagent")
    store.save_recording(None, recorder.recording)
    found = store.find_recording(None, recording_key(SOURCE, 0))
    assert found is not None
    return found


def replaying(
    recording: TurnRecording, *, mismatch: str = "stop", live: bool = True
) -> tuple[Agent, list[ReplayProvider]]:
    """An agent whose turns replay `recording` (continuing with its own provider if live)."""
    agent = Agent(tools=[measure])
    made: list[ReplayProvider] = []

    def wrap(provider, settings):
        made.append(ReplayProvider(recording, mismatch=mismatch, live=provider if live else None))
        return made[-1]

    agent.session.provider_wrapper = wrap
    return agent, made


def test_replay_answers_without_a_request_or_a_key_and_runs_the_tools(
    fake_api, tmp_path, monkeypatch
):
    recording = record_turn(fake_api, tmp_path)
    sent = len(fake_api.requests)
    fake_api.stop()
    monkeypatch.delenv("ANTHROPIC_API_KEY")  # a replay needs no key

    measured["runs"] = 0
    agent, made = replaying(recording)
    events = list(agent.stream("measure x"))

    shown = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "Measuring." in shown and "x is 42." in shown
    assert measured["runs"] == 1  # the tool ran for real
    assert any(isinstance(e, ToolResultEvent) and "x = 42" in e.output.text() for e in events)
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert any("Replayed 2 recorded model turns" in n for n in notices)
    assert len(fake_api.requests) == sent  # nothing was sent
    assert made[0].replayed == 2 and not made[0].went_live
    assert agent.usage.cost_usd == 0 and agent.usage.output_tokens == 0
    assert_valid_history(agent.messages)
    assert agent.messages[1]["content"][0]["signature"]  # thinking kept with its signature


def test_a_changed_tool_result_stops_the_replay_with_a_clear_error(fake_api, tmp_path):
    recording = record_turn(fake_api, tmp_path)
    sent = len(fake_api.requests)
    measured["value"] = "43"  # the data changed since the recording
    agent, _ = replaying(recording)
    with pytest.raises(
        ReplayMismatchError, match=r"result of measure .* differs from its recording"
    ):
        agent.run("measure x")
    assert_valid_history(agent.messages)
    assert len(fake_api.requests) == sent

    # Through the pump, as every surface runs a turn: an error line and a failed end.
    agent, _ = replaying(recording)
    result = pump(agent.stream("measure x"), lambda event: None)
    assert isinstance(result.error, ReplayMismatchError)
    assert result.stop_reason == "replay_mismatch" and "differs from its recording" in str(
        result.error
    )


def test_a_mismatch_continues_live_when_asked(fake_api, tmp_path):
    recording = record_turn(fake_api, tmp_path)
    measured["value"] = "43"
    fake_api.enqueue("Now x is 43.")
    agent, made = replaying(recording, mismatch="live")
    events = list(agent.stream("measure x"))
    assert "Now x is 43." in "".join(e.text for e in events if isinstance(e, TextDelta))
    assert any(isinstance(e, Notice) and "Continuing live" in e.text for e in events)
    assert made[0].went_live and made[0].replayed == 1
    # The live request carries the replayed start and the new tool result.
    sent = fake_api.last_body["messages"]
    assert "x = 43" in result_text(tool_results(sent[-1])[0])
    assert sent[-2]["content"][1]["text"] == "Measuring."
    assert_valid_history(agent.messages)


def test_a_mismatch_cannot_continue_live_without_a_provider(fake_api, tmp_path):
    recording = record_turn(fake_api, tmp_path)
    measured["value"] = "43"
    agent, _ = replaying(recording, mismatch="live", live=False)
    with pytest.raises(ReplayMismatchError, match="cannot continue live"):
        agent.run("measure x")


def test_a_turn_that_asks_for_more_than_was_recorded_is_a_mismatch(fake_api, tmp_path):
    recording = record_turn(fake_api, tmp_path)
    recording.responses = recording.responses[:1]  # only the tool call was recorded
    recording.tool_results = recording.tool_results[:1]
    agent, _ = replaying(recording)
    with pytest.raises(ReplayMismatchError, match="recording of this cell has 1"):
        agent.run("measure x")


def test_a_failed_request_leaves_an_incomplete_recording(fake_api):
    fake_api.enqueue(error(400, "invalid_request_error", "bad"))
    recorder = TurnRecorder(SOURCE, 0)
    agent = Agent(tools=[measure], max_retries=0)
    agent.session.provider_wrapper = lambda provider, settings: RecordingProvider(
        provider, recorder
    )
    pump(agent.stream("measure x"), lambda event: None)
    assert not recorder.complete and recorder.recording.responses == []


def test_turn_end_hooks_run_when_a_turn_completes_not_when_it_waits(fake_api):
    ended: list[str | None] = []
    agent = Agent(tools=[guarded], permission_mode="ask")
    agent.session.turn_end_hooks.append(lambda session, run: ended.append(run.stop_reason))
    fake_api.enqueue(reply(tool_use("guarded", {"name": "a"})), "done")
    assert agent.run("go").stop_reason == "awaiting_approval"
    assert ended == []
    agent.resume("allow")
    assert ended == ["end_turn"]
    fake_api.enqueue(error(400, "invalid_request_error", "bad"))
    pump(agent.stream("again"), lambda event: None)
    assert ended == ["end_turn", "error"]  # an error completes the turn too


# -- the normalised hash of a tool result ------------------------------------


def result(content, is_error: bool = False) -> dict:
    return {"type": "tool_result", "tool_use_id": "t", "content": content, "is_error": is_error}


def test_fingerprints_mask_addresses_and_timings():
    a = "df = <DataFrame at 0x7f3a2b1c9d40>; took 1.53 s; Wall time: 12 ms; 0:00:01.25"
    b = "df = <DataFrame at 0x7f99aa00ff10>; took 0.2 s; Wall time: 3.1 ms; 0:00:07.00"
    assert mask_text(a) == mask_text(b)
    assert tool_result_fingerprint(result(a)) == tool_result_fingerprint(result(b))
    assert tool_result_fingerprint(result("x = 42")) != tool_result_fingerprint(result("x = 43"))
    assert tool_result_fingerprint(result("x")) != tool_result_fingerprint(result("x", True))
    as_block = result([{"type": "text", "text": a}])
    assert tool_result_fingerprint(as_block) == tool_result_fingerprint(
        result([{"type": "text", "text": b}])
    )


def test_images_compare_by_media_type_and_size():
    def with_image(data: str, media: str = "image/png") -> dict:
        source = {"type": "base64", "media_type": media, "data": data}
        return result([{"type": "text", "text": "plot"}, {"type": "image", "source": source}])

    same_size = png(40, 30, seed=1), png(40, 30, seed=2)
    assert same_size[0] != same_size[1]
    assert image_size(same_size[0]) == (40, 30)
    fingerprint = tool_result_fingerprint
    assert fingerprint(with_image(same_size[0])) == fingerprint(with_image(same_size[1]))
    assert fingerprint(with_image(png(40, 31))) != fingerprint(with_image(same_size[0]))
    assert fingerprint(with_image(same_size[0], "image/jpeg")) != fingerprint(
        with_image(same_size[0])
    )


def test_jpeg_and_gif_sizes():
    import base64
    import struct

    jpeg = (
        b"\xff\xd8"
        + b"\xff\xe0"
        + struct.pack(">H", 16)
        + b"JFIF\x00" * 2
        + b"\x00\x00\x00\x00"
        + b"\xff\xc0"
        + struct.pack(">HBHH", 17, 8, 120, 160)
        + b"\x00" * 12
    )
    assert image_size(base64.b64encode(jpeg).decode()) == (160, 120)
    gif = b"GIF89a" + struct.pack("<HH", 7, 5) + b"\x00" * 8
    assert image_size(base64.b64encode(gif).decode()) == (7, 5)
    assert image_size(base64.b64encode(b"not an image").decode()) is None
