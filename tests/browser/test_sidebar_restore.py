"""The conversation kept with the notebook, in the browser: the record's pointer in the
notebook's metadata, and the sidebar continuing the saved conversation after a page
reload and a kernel restart."""

from __future__ import annotations

import json
import re
import time

from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    Lab,
    cells,
    editor,
    nbagent_console_errors,
    open_notebook,
    open_sidebar,
    run_cell,
    smoke,
    wait_connected,
    write_notebook,
)
from tests.browser.test_sidebar import send
from tests.fake_anthropic import FakeAnthropic, reply, text

PROMPT = "Remember this: the secret number is 7."


def _metadata_on_disk(path: str, lab: Lab, timeout: float = 10) -> dict:
    """The notebook's metadata as saved, once the save has reached the file."""
    deadline = time.monotonic() + timeout
    while True:
        metadata: dict = json.loads((lab.root / path).read_text())["metadata"]
        if "nbagent" in metadata or time.monotonic() > deadline:
            return metadata
        time.sleep(0.1)


def test_the_sidebar_continues_the_saved_conversation_after_reload_and_restart(
    page: Page, lab: Lab, fake: FakeAnthropic
) -> None:
    path = "restore/analysis.ipynb"
    write_notebook(lab, path, [("load", "%load_ext nbagent"), ("ask", f"%%agent\n{PROMPT}")])
    open_notebook(page, lab, path, "restore")
    sidebar = open_sidebar(page)
    run_cell(page, 0)
    wait_connected(page)

    # -- a %%agent turn, and a sidebar turn after it -------------------------------------
    fake.enqueue(reply(text("Noted: the secret number is 7.")))
    run_cell(page, 1)
    expect(cells(page).nth(1).locator(".jp-nbagent-turn-output").last).to_contain_text(
        "Noted: the secret number is 7.", timeout=30_000
    )
    fake.enqueue(reply(text("I will keep it in mind.")))
    send(page, "Keep it safe.")
    expect(sidebar.locator(".jp-nbagent-turn").last.locator(".jp-nbagent-text")).to_have_text(
        "I will keep it in mind.", timeout=30_000
    )

    # -- the record's pointer, in the notebook's metadata once saved -----------------------
    conversations = lab.root / "restore" / ".nbagent" / "conversations"
    (saved,) = conversations.glob("*.json")
    pointer = {"record": ".nbagent", "conversation": saved.stem, "format": 1}
    page.wait_for_function(
        "(p) => JSON.stringify(window.__nb().context.model.getMetadata('nbagent')) === p",
        arg=json.dumps(pointer, separators=(",", ":")),
        timeout=10_000,
    )
    editor(cells(page).nth(0)).click()
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !window.__nb().context.model.dirty", timeout=15_000)
    metadata = _metadata_on_disk(path, lab)
    assert metadata.get("nbagent") == pointer, metadata
    assert metadata["kernelspec"]["name"] == "python3"  # the rest of the metadata is kept

    # -- a page reload: the sidebar shows the conversation the kernel holds --------------
    page.reload()
    page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-NotebookPanel')")
    page.evaluate(smoke.JS_HELPERS)
    smoke.wait_kernel_idle(page)
    sidebar = open_sidebar(page)
    wait_connected(page)
    restored = sidebar.locator(".jp-nbagent-history .jp-nbagent-turn.jp-mod-restored")
    expect(restored.locator(".jp-nbagent-prompt")).to_have_text(
        [PROMPT, "Keep it safe."], timeout=15_000
    )
    expect(restored.locator(".jp-nbagent-text")).to_have_text(
        ["Noted: the secret number is 7.", "I will keep it in mind."]
    )

    # -- a kernel restart: the saved conversation, which the next turn continues ----------
    page.evaluate("() => window.__kernel().restart()")
    smoke.wait_kernel_idle(page)
    expect(sidebar.locator(".jp-nbagent-history > .jp-nbagent-notice")).to_contain_text(
        "saved with this notebook", timeout=30_000
    )
    wait_connected(page)
    expect(restored.locator(".jp-nbagent-prompt")).to_have_text([PROMPT, "Keep it safe."])
    assert "loaded False" in page.evaluate(
        "() => window.__run(\"import sys; print('loaded', 'nbagent.jupyter.extension' "
        'in sys.modules)")'
    ), "the restored history loaded nbagent"

    fake.enqueue(reply(text("The secret number is 7.")))
    send(page, "What was the secret number?")
    live = sidebar.locator(".jp-nbagent-log > .jp-nbagent-turn").last
    expect(live.locator(".jp-nbagent-text")).to_have_text("The secret number is 7.", timeout=30_000)
    expect(live.locator(".jp-nbagent-notice").first).to_contain_text(
        re.compile("Continuing the saved conversation")
    )
    # The request after the restart carried the earlier conversation.
    sent = json.dumps((fake.last_body or {})["messages"])
    for said in (PROMPT, "Noted: the secret number is 7.", "Keep it safe.", "I will keep it"):
        assert said in sent, said
    assert "What was the secret number?" in sent
    assert not nbagent_console_errors(page), nbagent_console_errors(page)
