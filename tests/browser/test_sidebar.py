"""The nbagent sidebar end to end: a prompt, an approval, a Stop, and the next prompt."""

from __future__ import annotations

import re
import time

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
from tests.fake_anthropic import FakeAnthropic, reply, text, tool_use

USAGE = {"input_tokens": 1000, "output_tokens": 200}  # $0.0100 a request at opus-4-8 prices
SLOW_WORDS = 500
SLOW_DELAY = 0.02  # ~500 deltas: the slow answer takes >= 10 s to stream


def send(page: Page, prompt: str) -> None:
    sidebar = page.locator("#jp-nbagent-sidebar")
    expect(sidebar.locator(".jp-nbagent-send")).to_be_enabled(timeout=15_000)
    sidebar.locator(".jp-nbagent-input").fill(prompt)
    sidebar.locator(".jp-nbagent-send").click()


def test_sidebar_conversation_with_approval_and_stop(
    page: Page, lab: Lab, fake: FakeAnthropic
) -> None:
    write_notebook(
        lab,
        "chat/notes.ipynb",
        [("setup", "%load_ext nbagent\n%config NBAgent.permission_mode = 'ask'")],
    )
    created = lab.root / "chat" / "hello.txt"
    open_notebook(page, lab, "chat/notes.ipynb", "chat")
    sidebar = open_sidebar(page)
    run_cell(page, 0)
    wait_connected(page)
    turns = sidebar.locator(".jp-nbagent-turn")

    # -- 1. a tool call that needs approval ------------------------------------------
    fake.enqueue(
        reply(
            text("I'll write the file."),
            tool_use("create_file", {"file_path": "hello.txt", "content": "Hello from nbagent\n"}),
            usage=USAGE,
        ),
        reply(text("Created **hello.txt** with a greeting."), usage=USAGE),
    )
    send(page, "Create hello.txt with a greeting")
    first = turns.nth(0)
    expect(first.locator(".jp-nbagent-prompt")).to_have_text("Create hello.txt with a greeting")
    allow = first.locator(".jp-nbagent-approve-allow")
    expect(allow).to_be_enabled(timeout=30_000)
    expect(first.locator(".jp-nbagent-approval-title")).to_have_text("Allow create_file (write)?")
    assert not created.exists(), "the file was written before the user allowed it"
    allow.click()
    expect(first.locator(".jp-nbagent-approval-answer")).to_have_text("Allow once")
    expect(first.locator(".jp-nbagent-approve-deny")).to_be_disabled()
    expect(first.locator(".jp-nbagent-text strong")).to_have_text("hello.txt", timeout=15_000)
    expect(first.locator(".jp-nbagent-text").last).to_have_text(
        "Created hello.txt with a greeting."
    )
    assert created.read_text() == "Hello from nbagent\n"
    expect(first.locator(".jp-nbagent-tool-name")).to_have_text(["create_file"])
    expect(first.locator(".jp-nbagent-tool-summary")).not_to_have_text(
        re.compile("running|not run|fail|denied", re.I)
    )
    expect(first.locator(".jp-nbagent-turn-footer")).to_have_text(
        "2,000 in (0% cached) · 400 out · $0.0200", timeout=10_000
    )
    expect(sidebar.locator(".jp-nbagent-usage")).to_have_text(
        "2,000 in (0% cached) · 400 out · $0.0200"
    )
    assert tool_results(fake.last_body or {})[-1][1] is False

    # -- 2. a slow answer, stopped -------------------------------------------------------
    fake.enqueue(reply(text("word " * SLOW_WORDS, chunk=5), delay=SLOW_DELAY, usage=USAGE))
    send(page, "Write a very long answer")
    second = turns.nth(1)
    stop = sidebar.locator(".jp-nbagent-stop")
    expect(second.locator(".jp-nbagent-text")).to_contain_text("word word", timeout=30_000)
    expect(stop).to_be_enabled()
    clicked = time.monotonic()
    stop.click()
    expect(second.locator(".jp-nbagent-turn-footer")).to_contain_text("interrupted", timeout=5_000)
    stopped_after = time.monotonic() - clicked
    expect(stop).to_be_disabled(timeout=5_000)
    expect(sidebar.locator(".jp-nbagent-send")).to_be_enabled(timeout=5_000)
    shown = second.locator(".jp-nbagent-text").last.text_content() or ""
    assert stopped_after < 3, f"the turn ended {stopped_after:.1f} s after Stop"
    assert 0 < shown.count("word") < SLOW_WORDS * 0.8, f"{shown.count('word')} words shown"
    assert second.locator(".jp-nbagent-error").count() == 0

    # -- 3. the conversation goes on ----------------------------------------------------
    fake.enqueue(reply(text("Still here: the third answer."), usage=USAGE))
    send(page, "Are you still there?")
    third = turns.nth(2)
    expect(third.locator(".jp-nbagent-text")).to_have_text(
        "Still here: the third answer.", timeout=30_000
    )
    expect(third.locator(".jp-nbagent-turn-footer")).to_have_text(
        re.compile(r"^[\d,]+ in \(\d+% cached\) · [\d,]+ out · \$0\.0\d{3}$"), timeout=10_000
    )
    expect(sidebar.locator(".jp-nbagent-send")).to_be_enabled(timeout=10_000)
    expect(turns).to_have_count(3)
    totals = sidebar.locator(".jp-nbagent-usage").text_content() or ""
    match = re.fullmatch(
        r"([\d,]+) in \(\d+% cached\) · ([\d,]+) out · \$(\d+\.\d{4})", totals.strip()
    )
    assert match, totals
    assert int(match[1].replace(",", "")) >= 3000 and float(match[3]) >= 0.03, totals

    # The model saw the interrupted answer and the new prompt, in a valid history.
    last = fake.last_body or {}
    roles = [m["role"] for m in last["messages"]]
    assert roles[-3:] == ["user", "assistant", "user"], roles
    assert "[interrupted]" in str(last["messages"][-2]["content"])
    assert "Are you still there?" in str(last["messages"][-1]["content"])
    assert not nbagent_console_errors(page), nbagent_console_errors(page)
