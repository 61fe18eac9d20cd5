"""nbagent in Jupyter Notebook 7, seen in the browser.

Notebook 7 loads JupyterLab extensions: the same labextension must give it the
`%%agent` MIME renderer, the live notebook tools (the bridge) and the chat. Its side
panels are collapsed by default, so the chat is opened from the View menu ("Open
nbagent Chat", the `nbagent:open-chat` command), which expands the right panel.

The model is scripted on the fake Messages API; the Notebook server, the kernel, the
bridge, the extension and the notebook model are real.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import (
    Lab,
    assistant_turns,
    browser_page,
    cells,
    editor,
    model_cells,
    nbagent_console_errors,
    run_cell,
    scripted,
    smoke,
    start_lab,
    tool_results,
    write_notebook,
)
from tests.fake_anthropic import FakeAnthropic, Response, reply, text, tool_use

INSERTED = re.compile(r"Inserted code cell '([^']+)'")
USAGE = {"input_tokens": 800, "output_tokens": 120}
OPEN_CHAT = "Open nbagent Chat"


@pytest.fixture(scope="module")
def notebook7(lab_api: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """`jupyter notebook` (Notebook 7) on 127.0.0.1, its kernels on the fake API."""
    tmp = tmp_path_factory.mktemp("notebook7")
    root, state = tmp / "root", tmp / "state"
    root.mkdir()
    state.mkdir()
    server = start_lab(root, state, lab_api.url, app="notebook")
    try:
        yield server
    finally:
        smoke.stop_lab(server.proc)  # by its PID: SIGTERM, then kill


@pytest.fixture
def nb7_page(browser: Browser, notebook7: Lab, request: pytest.FixtureRequest) -> Iterator[Page]:
    with browser_page(browser, request.node.name) as p:
        yield p


def open_in_notebook7(page: Page, server: Lab, path: str) -> None:
    """Open `path` on its Notebook 7 page and wait for its kernel to be idle."""
    page.goto(f"{server.url}/notebooks/{path}")
    page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-NotebookPanel')")
    page.evaluate(smoke.JS_HELPERS)
    smoke.wait_kernel_idle(page)


def bridge_status(page: Page) -> str | None:
    """What the (possibly collapsed) chat shows as the bridge's status."""
    status: str | None = page.evaluate(
        "() => { const n = document.querySelector('#jp-nbagent-sidebar .jp-nbagent-status');"
        " return n ? n.dataset.status : null; }"
    )
    return status


def right_panel_collapsed(page: Page) -> bool:
    return bool(page.evaluate("() => window.jupyterapp.shell.rightCollapsed"))


def test_agent_cell_in_notebook7_inserts_runs_and_renders(
    nb7_page: Page, notebook7: Lab, fake: FakeAnthropic
) -> None:
    page = nb7_page
    write_notebook(
        notebook7,
        "nb7/analysis.ipynb",
        [
            ("load", "%load_ext nbagent"),
            ("ask", "%%agent\nPut b = 6 * 7 in a new cell, print it, and run it."),
        ],
    )
    learned: dict[str, Any] = {}

    @scripted
    def model(body: dict[str, Any]) -> Response:
        """insert_cell -> run_cell on the new cell -> a markdown answer."""
        step = assistant_turns(body)
        results = learned["results"] = tool_results(body)
        if step == 0:
            return reply(
                text("Adding the cell."),
                tool_use("insert_cell", {"source": "b = 6 * 7\nprint(b)", "cell_type": "code"}),
            )
        if step == 1:
            match = INSERTED.search(results[0][0])
            assert match, results
            learned["inserted"] = match.group(1)
            return reply(tool_use("run_cell", {"cell_id": learned["inserted"]}))
        return reply(text("Done: the new cell printed **42**."), usage=USAGE)

    fake.responder = model
    open_in_notebook7(page, notebook7, "nb7/analysis.ipynb")

    # The chat is in the right side panel, collapsed as Notebook 7 starts.
    assert right_panel_collapsed(page)
    expect(page.locator("#jp-nbagent-sidebar .jp-nbagent-input")).to_be_hidden()
    # The bridge registered with the kernel by itself, before nbagent is loaded.
    page.wait_for_function(
        "() => document.querySelector('#jp-nbagent-sidebar .jp-nbagent-status')"
        "?.dataset.status === 'connected'"
    )

    run_cell(page, 0)
    run_cell(page, 1)

    nb = cells(page)
    expect(nb).to_have_count(3, timeout=15_000)
    expect(editor(nb.nth(2))).to_have_text(re.compile(r"b = 6 \* 7\s*print\(b\)"))
    expect(nb.nth(2).locator(".jp-OutputArea-output")).to_have_text("42", timeout=15_000)
    assert [c["id"] for c in model_cells(page)] == ["load", "ask", learned["inserted"]]
    assert not model.failures, model.failures
    results = learned["results"]
    assert len(fake.requests) == 3 and not [t for t, err in results if err], results
    assert "42" in results[1][0], results

    # The %%agent output is drawn by nbagent's MIME renderer, not its text fallback.
    turn = nb.nth(1).locator(".jp-OutputArea-output.jp-nbagent-turn-output")
    expect(turn.last).to_contain_text("the new cell printed 42", timeout=10_000)
    expect(turn.locator("strong").last).to_have_text("42")
    expect(turn.locator(".jp-nbagent-tool-name")).to_have_text(["insert_cell", "run_cell"])
    assert "[nbagent:" not in nb.nth(1).locator(".jp-OutputArea-output").all_text_contents()[-1]
    assert not nbagent_console_errors(page), nbagent_console_errors(page)


def test_chat_opens_from_the_view_menu_and_answers(
    nb7_page: Page, notebook7: Lab, fake: FakeAnthropic
) -> None:
    page = nb7_page
    write_notebook(notebook7, "nb7/chat.ipynb", [("setup", "rows = [3, 1, 2]")])
    fake.responder = scripted(
        lambda body: reply(
            text("`rows` holds **three** numbers; sorted they are 1, 2, 3."), usage=USAGE
        )
    )
    open_in_notebook7(page, notebook7, "nb7/chat.ipynb")
    run_cell(page, 0)
    assert page.evaluate("() => window.jupyterapp.commands.label('nbagent:open-chat')") == (
        OPEN_CHAT
    )
    assert right_panel_collapsed(page)

    # View > Open nbagent Chat expands the right panel on the chat.
    page.click(".lm-MenuBar-item:has(.lm-MenuBar-itemLabel:text-is('View'))")
    page.locator(f".lm-Menu .lm-Menu-itemLabel:text-is('{OPEN_CHAT}')").click()
    sidebar = page.locator("#jp-nbagent-sidebar")
    expect(sidebar.locator(".jp-nbagent-input")).to_be_visible(timeout=15_000)
    assert not right_panel_collapsed(page)
    expect(sidebar.locator(".jp-nbagent-title")).to_have_text("chat.ipynb")
    expect(sidebar.locator(".jp-nbagent-status")).to_have_attribute(
        "data-status", "connected", timeout=30_000
    )

    sidebar.locator(".jp-nbagent-input").fill("What is in rows?")
    sidebar.locator(".jp-nbagent-send").click()
    turn = sidebar.locator(".jp-nbagent-turn").last
    expect(turn.locator(".jp-nbagent-prompt")).to_have_text("What is in rows?")
    expect(turn.locator(".jp-nbagent-text strong")).to_have_text("three", timeout=30_000)
    expect(sidebar.locator(".jp-nbagent-send")).to_be_enabled(timeout=30_000)
    expect(sidebar.locator(".jp-nbagent-usage")).to_contain_text("$")
    assert fake.last_body is not None
    assert "What is in rows?" in json.dumps(fake.last_body["messages"])
    assert not nbagent_console_errors(page), nbagent_console_errors(page)

    # The command closes nothing: running it again keeps the chat open and focused.
    page.evaluate("() => window.jupyterapp.commands.execute('nbagent:open-chat')")
    expect(sidebar.locator(".jp-nbagent-input")).to_be_focused()
    assert not right_panel_collapsed(page)
