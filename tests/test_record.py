"""The `.nbagent/` store: redacted, deduplicated, atomic, under a size cap; its location."""

from __future__ import annotations

import base64
import json
import random
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from nbagent.record.blobs import LARGE_TEXT, MISSING_IMAGE
from nbagent.record.files import write_atomic
from nbagent.record.keeper import ConversationKeeper
from nbagent.record.location import RecordLocation, locate
from nbagent.record.store import RecordStore, SavedConversation, TurnRecording, recording_key
from tests.helpers import assert_valid_history

SECRET = "tok-9f8e7d6c5b4a39281706"


def png(width: int, height: int, seed: int | None = None) -> str:
    """A valid base64 grey PNG: one level, or noise from `seed` (which compresses badly)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    noise = random.Random(seed)
    rows = b"".join(
        b"\x00" + (bytes(width) if seed is None else noise.randbytes(width)) for _ in range(height)
    )
    raw = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(raw).decode()


def image_block(data: str) -> dict:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}


def history_with(figure: str, prompt: str = "plot it") -> list[dict]:
    long_output = f"{prompt}\nrow,value\n" + "".join(f"{i},{i * i}\n" for i in range(2000))
    return [
        {"role": "user", "content": [{"type": "text", "text": f"{prompt} with token {SECRET}"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Plot.", "signature": "sig-1"},
                {"type": "tool_use", "id": "t1", "name": "run_python", "input": {"code": "plot()"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": long_output}, image_block(figure)],
                }
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "Here it is."}]},
    ]


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("NOTEBOOK_SERVICE_TOKEN", SECRET)


def files_text(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_round_trip_redacts_secrets_and_stores_each_image_once(tmp_path, secret_env):
    store = RecordStore(tmp_path / ".nbagent")
    figure = png(64, 48)
    messages = history_with(figure)
    store.save_conversation(SavedConversation("c1", "analysis.ipynb", messages))
    # The same figure again in a later turn, and the conversation saved again.
    messages += history_with(figure, prompt="again")[0:1]
    store.save_conversation(SavedConversation("c1", "analysis.ipynb", messages))

    assert SECRET not in files_text(tmp_path / ".nbagent")
    blobs = list((tmp_path / ".nbagent" / "blobs").iterdir())
    assert len(blobs) == 2  # the figure and the long output, each once
    assert figure not in (tmp_path / ".nbagent" / "conversations" / "c1.json").read_text()

    loaded = store.latest_conversation("analysis.ipynb")
    assert loaded is not None and loaded.id == "c1"
    assert_valid_history(loaded.messages[:4])
    result = loaded.messages[2]["content"][0]["content"]
    assert result[1]["source"]["data"] == figure  # the image is back, byte for byte
    assert len(result[0]["text"]) >= LARGE_TEXT
    assert "[redacted:NOTEBOOK_SERVICE_TOKEN]" in loaded.messages[0]["content"][0]["text"]
    assert loaded.messages[1]["content"][0]["signature"] == "sig-1"
    assert loaded.turns == 2
    assert store.latest_conversation("other.ipynb") is None
    assert store.latest_conversation(None) is None


def test_latest_conversation_is_the_newest_of_that_notebook(tmp_path):
    store = RecordStore(tmp_path)
    store.save_conversation(SavedConversation("old", None, history_with(png(2, 2), "first")))
    store.save_conversation(SavedConversation("new", None, history_with(png(2, 2), "second")))
    store.save_conversation(SavedConversation("nb", "a.ipynb", history_with(png(2, 2), "x")))
    assert store.latest_conversation(None).id == "new"  # type: ignore[union-attr]
    assert store.latest_conversation(None, exclude="new").id == "old"  # type: ignore[union-attr]
    assert store.latest_conversation("a.ipynb").id == "nb"  # type: ignore[union-attr]


def test_size_cap_evicts_the_oldest_conversations_and_their_blobs(tmp_path):
    folder = tmp_path / ".nbagent"
    store = RecordStore(folder)
    for i in range(5):  # each conversation has its own large figure
        store.save_conversation(
            SavedConversation(f"c{i}", None, history_with(png(300, 200, seed=i), f"p{i}"))
        )
    size_of_one = store.size() / 5
    capped = RecordStore(folder, max_bytes=int(size_of_one * 2.5))
    capped.save_conversation(SavedConversation("c5", None, history_with(png(300, 200, 5), "p5")))

    left = sorted(p.stem for p in (folder / "conversations").glob("*.json"))
    assert left == ["c4", "c5"]  # the newest two fit; the saved one is always kept
    assert capped.size() <= capped.max_bytes  # type: ignore[operator]
    # No blob is left that nothing refers to, and the kept conversations load whole.
    referenced = "".join((folder / "conversations" / f"{c}.json").read_text() for c in left)
    for blob in (folder / "blobs").iterdir():
        assert blob.name in referenced
    kept = capped.latest_conversation(None, exclude="c5")
    assert kept is not None and MISSING_IMAGE not in json.dumps(kept.messages)


def test_size_cap_never_drops_the_conversation_being_saved(tmp_path, caplog):
    store = RecordStore(tmp_path, max_bytes=1000)
    store.save_conversation(SavedConversation("only", None, history_with(png(300, 300, seed=1))))
    assert store.latest_conversation(None) is not None
    assert "over its cap" in caplog.text


def test_size_cap_drops_old_recordings_after_conversations(tmp_path):
    store = RecordStore(tmp_path)
    for i in range(4):
        recording = TurnRecording(
            f"cell {i}",
            0,
            [{"content": [{"type": "text", "text": "x" * 9000 + str(i)}]}],
            [[]],
            recorded_at=i,
        )
        store.save_recording(None, recording)
    capped = RecordStore(tmp_path, max_bytes=int(store.size() * 0.6))
    capped.enforce_cap()
    assert capped.find_recording(None, recording_key("cell 0", 0)) is None
    assert capped.find_recording(None, recording_key("cell 3", 0)) is not None


def test_a_missing_blob_leaves_a_valid_history_that_says_so(tmp_path):
    store = RecordStore(tmp_path)
    store.save_conversation(SavedConversation("c", None, history_with(png(8, 8))))
    for blob in (tmp_path / "blobs").iterdir():
        blob.unlink()
    loaded = store.latest_conversation(None)
    assert loaded is not None
    assert_valid_history(loaded.messages)
    result = loaded.messages[2]["content"][0]["content"]
    assert result[1] == {"type": "text", "text": MISSING_IMAGE}


def test_recordings_by_key_and_across_notebooks_when_the_notebook_is_unknown(tmp_path, secret_env):
    store = RecordStore(tmp_path)
    reply = {
        "content": [{"type": "text", "text": f"the key is {SECRET}"}],
        "stop_reason": "end_turn",
    }
    store.save_recording("analysis.ipynb", TurnRecording("%%agent\nhi", 0, [reply], [[]]))
    key = recording_key("%%agent\nhi", 0)
    assert store.find_recording("analysis.ipynb", key) is not None
    assert store.find_recording("analysis.ipynb", recording_key("%%agent\nhi", 1)) is None
    assert store.find_recording("other.ipynb", key) is None
    # A headless run (notebook unknown) finds what the frontend run recorded here.
    found = store.find_recording(None, key)
    assert found is not None and found.source == "%%agent\nhi"
    assert SECRET not in files_text(tmp_path)


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        write_atomic(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]  # no temporary file left


def test_location_order(tmp_path):
    nb_dir = tmp_path / "project"
    nb_dir.mkdir()
    (nb_dir / "analysis.ipynb").write_text("{}")
    client = SimpleNamespace(path="project/analysis.ipynb")
    bridge = SimpleNamespace(choose_client=lambda: client)
    env = {"JPY_SESSION_NAME": str(tmp_path / "other.ipynb")}

    found = locate(bridge=bridge, setting="x.ipynb", env=env, cwd=nb_dir)
    # The frontend's path is relative to the server root; the kernel runs beside it.
    assert found == RecordLocation(nb_dir / ".nbagent", "analysis.ipynb", "frontend")
    found = locate(bridge=None, setting="x.ipynb", env=env, cwd=nb_dir)
    assert found == RecordLocation(tmp_path / ".nbagent", "other.ipynb", "JPY_SESSION_NAME")
    found = locate(setting="runs/x.ipynb", env={}, cwd=tmp_path)
    assert found == RecordLocation(tmp_path / ".nbagent", "x.ipynb", "setting")
    # nbclient, nbconvert, papermill: nothing but the working directory.
    assert locate(env={}, cwd=nb_dir) == RecordLocation(
        nb_dir / ".nbagent", None, "working directory"
    )


def test_keeper_starts_a_new_conversation_after_a_reset_and_adopts_a_saved_one(tmp_path):
    location = RecordLocation(tmp_path / ".nbagent", None, "working directory")
    keeper = ConversationKeeper(lambda: location)
    session = SimpleNamespace(history=history_with(png(2, 2)), usage=None, settings=None)
    keeper.save(session)
    first = keeper.conversation_id
    session.history.append({"role": "user", "content": "more"})
    keeper.save(session)
    assert keeper.conversation_id == first  # the same conversation, saved again
    session.history = history_with(png(2, 2), "after reset")  # reset() gives a new list
    keeper.save(session)
    assert keeper.conversation_id != first
    older = keeper.latest(session, other=True)
    assert older is not None and older.id == first and older.messages[-1]["content"] == "more"
    keeper.adopt(session, older)
    assert keeper.conversation_id == first and keeper.is_current(session)


# -- the terminal: nbagent --resume --------------------------------------------


def test_terminal_resume_continues_the_last_chat(tmp_path):
    from tests.fake_anthropic import FakeAnthropic
    from tests.test_cli import PROMPT, child_env, finish, spawn

    with FakeAnthropic() as server:
        server.enqueue("Noted: teal.", "You said teal.")
        env = child_env(server)
        child = spawn(tmp_path, env)
        child.expect(PROMPT)
        child.sendline("Remember the colour teal.")
        child.expect("Noted: teal.")
        child.expect(PROMPT)
        child.sendline("/exit")
        assert finish(child) == 0
        first = list(tmp_path.glob("workspace/session_*"))
        assert len(first) == 1 and list(first[0].glob(".nbagent/conversations/*.json"))

        child = spawn(tmp_path, env, "--resume")
        child.expect(f"workspace: {first[0]}")
        child.expect(r"Resumed the conversation \(1 prompt\)")
        child.expect(PROMPT)
        child.sendline("Which colour?")
        child.expect("You said teal.")
        child.expect(PROMPT)
        child.sendline("/exit")
        assert finish(child) == 0
        sent = server.last_body["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "user"]
        assert "Remember the colour teal." in json.dumps(sent)
        assert len(list(tmp_path.glob("workspace/session_*"))) == 1  # no new workspace
