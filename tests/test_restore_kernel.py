"""The conversation kept beside the notebook, and replay, in real kernels run by nbclient.

nbclient (like nbconvert and papermill) tells the kernel nothing about its notebook,
so only the working directory is known: the `.nbagent/` folder is there.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
import pytest
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_notebook

from tests.fake_anthropic import reply, text, tool_use


def client_for(nb: nbformat.NotebookNode, cwd: Path) -> NotebookClient:
    return NotebookClient(
        nb, timeout=90, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )


def output_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
    return "\n".join(parts)


def test_after_a_kernel_restart_the_next_turn_carries_the_saved_conversation(fake_api, in_tmp):
    fake_api.enqueue(
        reply(tool_use("run_python", {"code": "total = 6 * 7"})),
        "Stored total.",
        "I will remember teal.",
        "You asked me to remember teal.",
    )
    nb = new_notebook(
        cells=[
            new_code_cell("%load_ext nbagent"),
            new_code_cell("%%agent\nPut 6*7 in a variable called total"),
            new_code_cell("%%agent\nRemember the colour teal."),
            new_code_cell("%load_ext nbagent"),
            new_code_cell("%%agent\nWhich colour did I ask you to remember?"),
            new_code_cell("%load_ext nbagent"),
            new_code_cell("%agent history"),
        ]
    )
    client = client_for(nb, in_tmp)

    def restart() -> None:
        run_sync(client.km.restart_kernel)(now=True)
        run_sync(client.kc.wait_for_ready)(timeout=60)

    with client.setup_kernel():
        for index in range(3):
            client.execute_cell(nb.cells[index], index)
        assert len(fake_api.requests) == 3
        restart()
        for index in range(3, 5):
            client.execute_cell(nb.cells[index], index)
        restart()  # and %agent history shows it after the next restart
        for index in range(5, 7):
            client.execute_cell(nb.cells[index], index)

    saved = list((in_tmp / ".nbagent" / "conversations").glob("*.json"))
    assert len(saved) == 1  # the restarted kernel continued (and saved) the same one
    sent = fake_api.last_body["messages"]
    prompts = json.dumps(sent)
    assert "Put 6*7 in a variable called total" in prompts
    assert "Remember the colour teal." in prompts and "I will remember teal." in prompts
    assert sent[-1]["content"][0]["text"].strip() == "Which colour did I ask you to remember?"
    assert "Continuing the saved conversation" in output_text(nb.cells[4])
    assert "You asked me to remember teal." in output_text(nb.cells[4])
    history = output_text(nb.cells[6])
    assert "Remember the colour teal." in history and "You asked me to remember teal." in history


def test_restore_off_starts_fresh_and_agent_resume_continues(fake_api, in_tmp, monkeypatch):
    fake_api.enqueue("Noted: teal.", "Fresh start.", "It was teal.")
    first = new_notebook(
        cells=[new_code_cell("%load_ext nbagent"), new_code_cell("%%agent\nRemember teal.")]
    )
    client_for(first, in_tmp).execute()
    monkeypatch.setenv("NBAGENT_RESTORE", "off")
    second = new_notebook(
        cells=[
            new_code_cell("%load_ext nbagent"),
            new_code_cell("%%agent\nHello?"),
            new_code_cell("%agent resume"),
            new_code_cell("%%agent\nWhich colour?"),
        ]
    )
    client_for(second, in_tmp).execute()
    assert len(fake_api.requests[1]["body"]["messages"]) == 1  # restore off: a fresh start
    assert "Continuing the saved conversation" in output_text(second.cells[2])
    assert "Remember teal." in json.dumps(fake_api.last_body["messages"])


def recorded_notebook(fake_api, cwd: Path) -> nbformat.NotebookNode:
    """A notebook whose %%agent cells define a variable and use it, run live once."""
    fake_api.enqueue(
        reply(
            text("Computing it."),
            tool_use("run_python", {"code": "answer = 6 * 7\nprint('answer set')"}),
        ),
        "answer is 42.",
        "Doubled, it is 84.",
    )
    nb = new_notebook(
        cells=[
            new_code_cell("%load_ext nbagent"),
            new_code_cell("%%agent\nPut 6*7 in a variable called answer"),
            new_code_cell("print(answer + 1)"),
            new_code_cell("%%agent\nDouble {answer} for me"),  # the key is the raw source
        ]
    )
    client_for(nb, cwd).execute()
    assert "answer is 42." in output_text(nb.cells[1])
    assert "Replayed" not in output_text(nb.cells[1])
    assert len(fake_api.requests) == 3
    return nb


def test_a_headless_rerun_replays_the_answers_with_no_request_and_no_key(
    fake_api, in_tmp, monkeypatch
):
    executed = recorded_notebook(fake_api, in_tmp)
    fake_api.stop()
    monkeypatch.delenv("ANTHROPIC_API_KEY")  # nor is a key needed

    rerun = copy.deepcopy(executed)
    client_for(rerun, in_tmp).execute()  # raises if any cell fails

    assert len(fake_api.requests) == 3  # zero requests in the re-run
    assert output_text(rerun.cells[2]).strip() == "43"  # the tool ran: the variable is back
    first, second = output_text(rerun.cells[1]), output_text(rerun.cells[3])
    assert "Computing it." in first and "answer is 42." in first and "run_python" in first
    assert "Replayed 2 recorded model turns" in first
    assert "Doubled, it is 84." in second and "Replayed 1 recorded model turn" in second
    # The re-run started fresh (it is the recorded run again), and saved that conversation.
    assert "Continuing the saved conversation" not in first


def test_a_changed_tool_result_fails_the_headless_rerun(fake_api, in_tmp, monkeypatch):
    (in_tmp / "data.csv").write_text("10\n")
    fake_api.enqueue(
        reply(tool_use("run_python", {"code": "print(open('data.csv').read())"})),
        "The file says 10.",
    )
    nb = new_notebook(
        cells=[new_code_cell("%load_ext nbagent"), new_code_cell("%%agent\nRead data.csv")]
    )
    client_for(nb, in_tmp).execute()
    fake_api.stop()
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    (in_tmp / "data.csv").write_text("11\n")  # the data changed since the recording

    rerun = copy.deepcopy(nb)
    with pytest.raises(CellExecutionError) as failed:
        client_for(rerun, in_tmp).execute()
    assert "differs from its recording" in str(failed.value)
    assert "Replay stopped: the result of run_python" in output_text(rerun.cells[1])
    assert len(fake_api.requests) == 2


# -- in one process: a KernelSession per "kernel", the sidebar's way in ---------


def kernel_session(shell, **config):
    """A fresh KernelSession (as after a restart) with the conversation attached."""
    from nbagent.jupyter.conversation import attach_conversation
    from nbagent.jupyter.session import KernelSession
    from nbagent.jupyter.settings import NBAgent

    session = KernelSession(shell, NBAgent(**config))
    return session, attach_conversation(session, session.agent)


def run_turn(session, prompt: str) -> list:
    from nbagent.pump import pump

    events: list = []
    pump(session.stream_turn(prompt), events.append)
    return events


def notices(events: list) -> str:
    from nbagent.events import Notice

    return "\n".join(e.text for e in events if isinstance(e, Notice))


def test_a_sidebar_turn_first_continues_the_saved_conversation(fake_api, in_tmp, ipython):
    fake_api.enqueue("Noted: teal.", "You said teal.")
    first, _ = kernel_session(ipython)
    run_turn(first, "Remember teal.")
    second, _ = kernel_session(ipython)  # a restarted kernel: the sidebar speaks first
    events = run_turn(second, "Which colour?")
    assert "Continuing the saved conversation (1 prompt" in notices(events)
    assert "Remember teal." in json.dumps(fake_api.last_body["messages"])


def test_restore_ask_continues_only_on_yes(fake_api, in_tmp, ipython, monkeypatch):
    fake_api.enqueue("Noted: teal.", "Fresh.", "You said teal.")
    first, _ = kernel_session(ipython)
    run_turn(first, "Remember teal.")
    monkeypatch.setattr("builtins.input", lambda question: "n")
    declined, conversation = kernel_session(ipython, restore="ask")
    conversation.begin_cell("Which colour?")
    assert "was not continued" in notices(run_turn(declined, "Which colour?"))
    assert len(fake_api.last_body["messages"]) == 1
    monkeypatch.setattr("builtins.input", lambda question: "y")
    accepted, _ = kernel_session(ipython, restore="ask")
    saved = list((in_tmp / ".nbagent" / "conversations").glob("*.json"))
    assert len(saved) == 2  # declining started a new conversation; the old one is kept
    assert "Continuing" in notices(run_turn(accepted, "Which colour?"))
    # The newest saved conversation (the declined kernel's) is the one continued.
    sent = fake_api.last_body["messages"]
    assert len(sent) == 3 and "Fresh." in json.dumps(sent)


def test_replay_force_replays_outside_headless_runs(fake_api, in_tmp, ipython, monkeypatch):
    fake_api.enqueue(reply(tool_use("run_python", {"code": "forced = 5"})), "Set forced.")
    session, conversation = kernel_session(ipython)
    conversation.begin_cell("%%agent\nset forced")
    run_turn(session, "set forced")
    assert ipython.user_ns.pop("forced") == 5
    sent = len(fake_api.requests)

    replayed, conversation = kernel_session(ipython, replay="force", restore="off")
    conversation.begin_cell("%%agent\nset forced")
    events = run_turn(replayed, "set forced")
    assert "Replayed 2 recorded model turns" in notices(events)
    assert ipython.user_ns["forced"] == 5 and len(fake_api.requests) == sent
    assert conversation.last_replay is not None and conversation.last_replay.replayed == 2
    # The same source again in this run is occurrence 1: not recorded, so it runs live.
    fake_api.enqueue("Live again.")
    conversation.begin_cell("%%agent\nset forced")
    assert "Replayed" not in notices(run_turn(replayed, "set forced"))
    assert len(fake_api.requests) == sent + 1
