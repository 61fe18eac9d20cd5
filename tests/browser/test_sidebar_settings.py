"""Issue 7's sidebar checks: settings read at every turn (a `%config` permission mode
after the first turn holds from the next sidebar turn), and the default model's
thinking shown (the fake omits thinking text unless the request asks for it, as the
API does for the default model)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    Lab,
    nbagent_console_errors,
    open_notebook,
    open_sidebar,
    run_cell,
    tool_results,
    wait_connected,
    write_notebook,
)
from tests.browser.test_sidebar import send
from tests.fake_anthropic import FakeAnthropic, reply, text, thinking, tool_use

DEFAULT_MODEL = "claude-opus-4-8"  # nbagent's default; its API default hides thinking text


def test_sidebar_turns_read_the_permission_mode_and_show_the_thinking(
    page: Page, lab: Lab, fake: FakeAnthropic
) -> None:
    write_notebook(
        lab,
        "settings/notes.ipynb",
        [("load", "%load_ext nbagent"), ("ask", "%config NBAgent.permission_mode = 'ask'")],
    )
    first_file = lab.root / "settings" / "first.txt"
    second_file = lab.root / "settings" / "second.txt"
    open_notebook(page, lab, "settings/notes.ipynb", "settings")
    sidebar = open_sidebar(page)
    run_cell(page, 0)
    wait_connected(page)
    turns = sidebar.locator(".jp-nbagent-turn")

    # -- 1. the default mode (auto): the write runs; the thinking shows ------------------
    fake.enqueue(
        reply(
            thinking("The user wants a first file; create_file will do."),
            text("Writing it."),
            tool_use("create_file", {"file_path": "first.txt", "content": "one\n"}),
        ),
        reply(text("Wrote first.txt.")),
    )
    send(page, "Write first.txt")
    first = turns.nth(0)
    expect(first.locator(".jp-nbagent-text").last).to_have_text("Wrote first.txt.", timeout=30_000)
    expect(first.locator(".jp-nbagent-thinking-body")).to_have_text(
        "The user wants a first file; create_file will do."
    )
    assert first.locator(".jp-nbagent-approval").count() == 0
    assert first_file.read_text() == "one\n"
    body = fake.requests[0]["body"]
    assert body["model"] == DEFAULT_MODEL
    assert body["thinking"] == {"type": "adaptive", "display": "summarized"}, body["thinking"]

    # -- 2. %config after the first turn: the next sidebar turn asks --------------------
    run_cell(page, 1)
    fake.enqueue(
        reply(tool_use("create_file", {"file_path": "second.txt", "content": "two\n"})),
        reply(text("I did not write second.txt.")),
    )
    send(page, "Write second.txt")
    second = turns.nth(1)
    expect(second.locator(".jp-nbagent-approval-title")).to_have_text(
        "Allow create_file (write)?", timeout=30_000
    )
    deny = second.locator(".jp-nbagent-approve-deny")
    expect(second.locator(".jp-nbagent-approve-allow")).to_be_enabled()
    assert not second_file.exists(), "the file was written before the user answered"
    deny.click()
    expect(second.locator(".jp-nbagent-text").last).to_have_text(
        "I did not write second.txt.", timeout=30_000
    )
    assert not second_file.exists()
    result, is_error = tool_results(fake.last_body or {})[-1]
    assert is_error and "denied" in result.lower(), result
    assert not nbagent_console_errors(page), nbagent_console_errors(page)
