"""Review and revert in the sidebar: a turn's changes listed with a Revert button that
restores the agent's edit and leaves the user's own edits alone."""

from __future__ import annotations

import re
import threading
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    Lab,
    assistant_turns,
    cells,
    editor,
    model_cells,
    nbagent_console_errors,
    open_notebook,
    open_sidebar,
    run_cell,
    scripted,
    wait_connected,
    write_notebook,
)
from tests.browser.test_sidebar import send
from tests.fake_anthropic import FakeAnthropic, Response, reply, text, tool_use


def test_revert_in_the_sidebar_restores_the_agents_edit_and_keeps_the_users(
    page: Page, lab: Lab, fake: FakeAnthropic
) -> None:
    write_notebook(
        lab,
        "review/work.ipynb",
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

    open_notebook(page, lab, "review/work.ipynb", "review")
    sidebar = open_sidebar(page)
    run_cell(page, 0)
    wait_connected(page)

    nb = cells(page)
    cell_a, cell_b, ask = nb.nth(1), nb.nth(2), nb.nth(3)
    editor(ask).click()
    page.keyboard.press("Control+Enter")
    assert waiting.wait(30), "the agent never asked the model after read_notebook"
    # The user types into cell A while the agent's turn runs.
    editor(cell_a).click()
    page.keyboard.press("End")
    page.keyboard.type(typed)
    go.set()
    expect(editor(cell_b)).to_have_text(agent_source, timeout=15_000)
    expect(ask.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]"), timeout=15_000)

    # -- the turn's changes, listed when it ended -------------------------------------
    changes = sidebar.locator(".jp-nbagent-changes")
    expect(changes).to_be_visible(timeout=10_000)
    expect(changes.locator(".jp-nbagent-changes-summary")).to_have_text(
        "Changes by nbagent: 1 turn to review"
    )
    changes.locator(".jp-nbagent-changes-summary").click()
    item = changes.locator(".jp-nbagent-change")
    expect(item).to_have_count(1)
    expect(item.locator(".jp-nbagent-change-label")).to_contain_text("Set agent_value to 2")
    expect(item.locator(".jp-nbagent-change-counts")).to_have_text("1 cell")
    diff = item.locator(".jp-nbagent-change-diff-body")
    expect(diff).to_contain_text("-agent_value = 1")
    expect(diff).to_contain_text("+" + agent_source)
    assert "typed by the user" not in (diff.text_content() or "")

    # -- Revert ----------------------------------------------------------------------------
    item.locator(".jp-nbagent-revert").click()
    expect(editor(cell_b)).to_have_text("agent_value = 1", timeout=15_000)
    expect(editor(cell_a)).to_have_text("user_value = 1" + typed)
    report = sidebar.locator(".jp-nbagent-revert-report")
    expect(report.locator(".jp-nbagent-revert-message")).to_have_text(
        re.compile(r"^Reverted turn \d+\.$")
    )
    expect(report.locator(".jp-nbagent-revert-restored")).to_have_text(
        ["Restored: cell 'cell-b': its source before the turn"]
    )
    expect(report.locator(".jp-nbagent-revert-not-restored")).to_have_count(0)
    button = item.locator(".jp-nbagent-revert")
    expect(button).to_have_text("Reverted")
    expect(button).to_be_disabled()
    expect(changes.locator(".jp-nbagent-changes-summary")).to_have_text(
        "Changes by nbagent: 0 turns to review"
    )
    sources = {c["id"]: c["source"] for c in model_cells(page)}
    assert sources["cell-a"] == "user_value = 1" + typed
    assert sources["cell-b"] == "agent_value = 1"

    # -- the model is told what was reverted -------------------------------------------
    fake.responder = None
    fake.enqueue(reply(text("Understood: agent_value is 1 again.")))
    send(page, "Is agent_value still 2?")
    expect(sidebar.locator(".jp-nbagent-turn").last.locator(".jp-nbagent-text")).to_have_text(
        "Understood: agent_value is 1 again.", timeout=30_000
    )
    last = str((fake.last_body or {})["messages"][-1]["content"])
    assert "undid the changes of turn" in last and "Is agent_value still 2?" in last, last
    assert not model.failures, model.failures
    assert not nbagent_console_errors(page), nbagent_console_errors(page)
