"""The sidebar's "MCP servers" section: one stdio server configured as users configure
it (`%config NBAgent.mcp_servers = {...}`), a sidebar turn starts it, and the sidebar
lists the server, its state and its tools as `%agent mcp` does."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    Lab,
    cells,
    nbagent_console_errors,
    open_notebook,
    open_sidebar,
    run_cell,
    wait_connected,
    write_notebook,
)
from tests.browser.test_sidebar import send
from tests.fake_anthropic import FakeAnthropic
from tests.test_mcp import STARTUP, stdio_entry

SERVER = "notes"


def test_the_sidebar_lists_the_mcp_servers_and_their_tools(
    page: Page, lab: Lab, fake: FakeAnthropic
) -> None:
    servers = {SERVER: stdio_entry(lab.root / "mcp" / "notes.txt")}
    write_notebook(
        lab,
        "mcp/tools.ipynb",
        [
            (
                "setup",
                "%load_ext nbagent\n%config NBAgent.permission_mode = 'auto'\n"
                f"%config NBAgent.mcp_servers = {servers!r}",
            ),
            ("status", "%agent mcp"),
        ],
    )
    open_notebook(page, lab, "mcp/tools.ipynb", "mcp")
    sidebar = open_sidebar(page)
    run_cell(page, 0)
    wait_connected(page)
    section = sidebar.locator(".jp-nbagent-mcp")
    # No turn yet: the server has not started and nothing is listed.
    expect(section).to_be_hidden()

    fake.enqueue("The notes server is ready.")
    send(page, "Which tools do you have?")
    expect(sidebar.locator(".jp-nbagent-text").last).to_have_text(
        "The notes server is ready.", timeout=(STARTUP + 30) * 1000
    )
    expect(section).to_be_visible(timeout=15_000)
    expect(section.locator(".jp-nbagent-mcp-summary")).to_have_text(
        "MCP servers: 1 server · 1 running"
    )
    section.locator(".jp-nbagent-mcp-summary").click()
    server = section.locator(f".jp-nbagent-mcp-server[data-server='{SERVER}']")
    expect(server.locator(".jp-nbagent-mcp-name")).to_have_text(SERVER)
    expect(server.locator(".jp-nbagent-mcp-state")).to_have_text("running")
    expect(server.locator(".jp-nbagent-mcp-origin")).to_have_text("(stdio, from setting)")
    names = server.locator(".jp-nbagent-mcp-tool-name")
    expect(names.first).to_be_visible()
    shown = dict(
        zip(
            names.all_inner_texts(),
            server.locator(".jp-nbagent-mcp-tool-category").all_inner_texts(),
            strict=True,
        )
    )
    assert shown["mcp__notes__echo"] == "read", shown
    assert shown["mcp__notes__wipe_notes"] != "read", shown  # unannotated: destructive

    # The same servers, states and tools as `%agent mcp` prints in a cell.
    run_cell(page, 1)
    printed = cells(page).nth(1).locator(".jp-OutputArea-output")
    expect(printed).to_contain_text(f"{SERVER} (stdio, from setting): running")
    listed = dict(re.findall(r"^\s+(\S+)\s+\[([^\]]+)\]$", printed.inner_text(), re.M))
    assert listed == shown, (listed, shown)
    assert not nbagent_console_errors(page), nbagent_console_errors(page)
