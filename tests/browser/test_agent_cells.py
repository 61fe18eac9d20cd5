"""`%%agent` cells editing the open notebook, seen in the browser.

The model's side is scripted on the fake API; the kernel, the bridge, the extension and
the notebook model are real.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    Lab,
    assistant_turns,
    cells,
    dialogs_seen,
    editor,
    model_cells,
    nbagent_console_errors,
    open_notebook,
    open_sidebar,
    read_sources,
    run_cell,
    scripted,
    tool_results,
    wait_connected,
    write_notebook,
)
from tests.fake_anthropic import FakeAnthropic, Response, reply, text, tool_use

INSERTED = re.compile(r"Inserted code cell '([^']+)'")
USAGE = {"input_tokens": 1000, "output_tokens": 200}


def test_agent_cell_inserts_and_runs_two_cells(page: Page, lab: Lab, fake: FakeAnthropic) -> None:
    write_notebook(
        lab,
        "insert/analysis.ipynb",
        [
            ("load", "%load_ext nbagent"),
            ("ask", "%%agent\nSet a = 21 in one new cell, print a * 2 in another, run both."),
        ],
    )
    learned: dict[str, Any] = {}

    @scripted
    def model(body: dict[str, Any]) -> Response:
        """read_notebook -> insert a = 21 -> insert print(a * 2) after it -> run both."""
        step = assistant_turns(body)
        results = learned["results"] = tool_results(body)
        ids = [m.group(1) for t, _ in results if (m := INSERTED.search(t))]
        if step == 0:
            return reply(text("Let me look at the notebook."), tool_use("read_notebook", {}))
        if step == 1:
            return reply(tool_use("insert_cell", {"source": "a = 21", "cell_type": "code"}))
        if step == 2:
            learned["first"] = ids[0]
            return reply(
                tool_use(
                    "insert_cell",
                    {"source": "print(a * 2)", "cell_type": "code", "after_cell_id": ids[0]},
                )
            )
        if step == 3:
            learned["second"] = ids[1]
            return reply(
                text("Running both cells."),
                tool_use("run_cell", {"cell_id": ids[0]}),
                tool_use("run_cell", {"cell_id": ids[1]}),
            )
        return reply(text("Done: `a` is 21 and the second cell printed **42**."), usage=USAGE)

    fake.responder = model

    open_notebook(page, lab, "insert/analysis.ipynb", "insert")
    open_sidebar(page)  # shows when the bridge is connected
    run_cell(page, 0)
    wait_connected(page)
    run_cell(page, 1)

    nb = cells(page)
    expect(nb).to_have_count(4, timeout=10_000)
    expect(editor(nb.nth(2))).to_have_text("a = 21")
    expect(editor(nb.nth(3))).to_have_text("print(a * 2)")
    expect(nb.nth(3).locator(".jp-OutputArea-output")).to_have_text("42", timeout=10_000)
    expect(nb.nth(2).locator(".jp-OutputArea-output")).to_have_count(0)

    # The cells on the page are the ones the agent created (ids from its tool results).
    page_cells = model_cells(page)
    assert [c["id"] for c in page_cells] == ["load", "ask", learned["first"], learned["second"]]
    assert not model.failures, model.failures
    results = learned["results"]
    assert len(fake.requests) == 5 and len(results) == 5, results
    assert not [t for t, is_error in results if is_error], results
    assert "42" not in results[3][0] and "42" in results[4][0], results

    # The %%agent output is drawn by nbagent's MIME renderer, not its text fallback.
    agent_out = nb.nth(1).locator(".jp-OutputArea-output")
    turn = nb.nth(1).locator(".jp-OutputArea-output.jp-nbagent-turn-output")
    expect(turn.last).to_contain_text("the second cell printed 42", timeout=10_000)
    expect(turn.locator("strong").last).to_have_text("42")
    expect(turn.locator(".jp-nbagent-tool-name")).to_have_text(
        ["read_notebook", "insert_cell", "insert_cell", "run_cell", "run_cell"]
    )
    expect(turn.locator(".jp-nbagent-turn-footer").last).to_contain_text("$")
    assert "[nbagent:" not in agent_out.all_text_contents()[-1]
    expect(nb.nth(1).locator(".jp-InputPrompt")).to_have_text("[2]:")
    assert not nbagent_console_errors(page), nbagent_console_errors(page)


def test_user_edits_survive_agent_edits(page: Page, lab: Lab, fake: FakeAnthropic) -> None:
    file = write_notebook(
        lab,
        "edits/work.ipynb",
        [
            ("load", "%load_ext nbagent"),
            ("cell-a", "user_value = 1"),
            ("cell-b", "agent_value = 1"),
            ("ask", "%%agent\nSet agent_value to 2 in the cell that defines it."),
        ],
    )
    typed = "  # typed by the user"
    agent_source = "agent_value = 2  # edited by the agent"
    waiting = threading.Event()  # the agent is mid-turn, waiting for the model
    go = threading.Event()  # the user has typed: let the model answer

    @scripted
    def model(body: dict[str, Any]) -> Response:
        if assistant_turns(body) == 1:  # read_notebook done: hold the turn
            waiting.set()
            go.wait(60)
            return reply(
                text("Cell B defines it; editing it."),
                tool_use("edit_cell", {"cell_id": "cell-b", "source": agent_source}),
            )
        return reply(text("Cell B now sets agent_value = 2."))

    fake.enqueue(reply(tool_use("read_notebook", {})))
    fake.responder = model

    open_notebook(page, lab, "edits/work.ipynb", "edits")
    open_sidebar(page)
    run_cell(page, 0)
    wait_connected(page)

    nb = cells(page)
    cell_a, cell_b, ask = nb.nth(1), nb.nth(2), nb.nth(3)
    editor(ask).click()
    page.keyboard.press("Control+Enter")
    assert waiting.wait(30), "the agent never asked the model after read_notebook"
    expect(ask.locator(".jp-InputPrompt")).to_have_text("[*]:")  # the turn is running

    # The user types into cell A while the agent's turn runs; nothing is saved.
    editor(cell_a).click()
    page.keyboard.press("End")
    page.keyboard.type(typed)
    expect(editor(cell_a)).to_have_text("user_value = 1" + typed)
    go.set()

    expect(editor(cell_b)).to_have_text(agent_source, timeout=15_000)
    expect(ask.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]"), timeout=15_000)
    expect(ask.locator(".jp-OutputArea-output.jp-nbagent-turn-output").last).to_contain_text(
        "agent_value = 2"
    )
    expect(editor(cell_a)).to_have_text("user_value = 1" + typed)
    assert not model.failures, model.failures
    results = tool_results(fake.last_body or {})
    assert results[-1] == ("Edited cell 'cell-b' (1 line).", False), results

    # Neither edit is on disk yet: the kernel never wrote the open notebook.
    assert page.evaluate("() => window.__nb().context.model.dirty")
    on_disk = read_sources(file)
    assert (on_disk["cell-a"], on_disk["cell-b"]) == ("user_value = 1", "agent_value = 1")

    # Save the way a user does; both edits reach the file, without a "File Changed" dialog.
    editor(cell_a).click()
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !window.__nb().context.model.dirty", timeout=15_000)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        on_disk = read_sources(file)
        if on_disk["cell-a"].endswith(typed):
            break
        time.sleep(0.1)
    assert on_disk["cell-a"] == "user_value = 1" + typed
    assert on_disk["cell-b"] == agent_source
    assert list(on_disk) == ["load", "cell-a", "cell-b", "ask"]
    assert dialogs_seen(page) == []
    expect(page.locator(".jp-Dialog")).to_have_count(0)
    assert not nbagent_console_errors(page), nbagent_console_errors(page)
