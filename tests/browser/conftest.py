"""Browser tests: a real JupyterLab (and Notebook 7) with nbagent-labextension, driven in
headless Chromium.

The model is the scripted fake Messages API (`tests/fake_anthropic.py`) running in this
pytest process; the JupyterLab server (and so every kernel it starts) gets
ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY pointing at it. Everything else is real: the
kernel side of nbagent, the comms, the extension, the notebook model.

Server start/stop, Chromium flags and the page helpers come from
`labextension/ui-tests/smoke.py` (loaded by path: its folder name has a hyphen).

Fixtures:
- `lab_api`  (package) the fake API server the JupyterLab kernels talk to;
- `lab`      (package) the JupyterLab server: a `Lab` with its URL and root dir;
- `playwright`, `browser` (package) one Playwright and one headless Chromium. Package
             scope, not session: a running sync Playwright holds an asyncio loop on the
             main thread, which later tests (asyncio.run) must not inherit;
- `fake`     (function) `lab_api`, cleared (queue, requests, responder) for this test;
- `page`     (function) a fresh browser page; at teardown a screenshot goes to
             `test-artifacts/browser/<test name>.png` (pass or fail), then the
             test's kernels are shut down.

`start_lab(..., app="notebook")` and `browser_page` serve the Notebook 7 tests, which
have their own server fixture (tests/browser/test_notebook7.py).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, Playwright, expect, sync_playwright

from tests.fake_anthropic import FAKE_API_KEY, FakeAnthropic, Response, reply, text

REPO = Path(__file__).resolve().parents[2]
SMOKE_PATH = REPO / "labextension" / "ui-tests" / "smoke.py"
ARTIFACTS = REPO / "test-artifacts" / "browser"

# Anything that would point the kernels at another model, key or prompt.
_CONFIG_VARS = ("MAX_TURNS", "SYSTEM_PROMPT_FILE")


def load_smoke() -> ModuleType:
    """`labextension/ui-tests/smoke.py` as a module (imported once)."""
    name = "nbagent_lab_smoke"
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, SMOKE_PATH)
    assert spec is not None and spec.loader is not None, f"cannot load {SMOKE_PATH}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


smoke = load_smoke()
CHROMIUM: str = smoke.CHROMIUM
CHROMIUM_ARGS: list[str] = list(smoke.CHROMIUM_ARGS)


def require_chromium() -> str:
    """Fail (never skip) when Debian's Chromium is missing: the test script installs it."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
            "(apt-get update && apt-get install -y chromium; scripts/test.sh does this as root)",
            pytrace=False,
        )
    return CHROMIUM


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"


# -- the JupyterLab server --------------------------------------------------------------


@dataclass
class Lab:
    url: str
    root: Path
    state: Path
    proc: subprocess.Popen[bytes]

    @property
    def log(self) -> str:
        path = self.state / "lab.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_lab(root: Path, state: Path, api_url: str, app: str = "jupyterlab") -> Lab:
    """smoke.start_lab, with the kernels' model endpoint set to `api_url`; `app` is
    "jupyterlab" or "notebook" (Notebook 7)."""
    port = smoke.free_port()
    env: dict[str, str | None] = {name: None for name in _CONFIG_VARS}
    env.update(
        ANTHROPIC_BASE_URL=api_url,
        ANTHROPIC_API_KEY=FAKE_API_KEY,
        IPYTHONDIR=str(state / "ipython"),
        # Kernels inherit the server's environment: drop the Agg backend that
        # tests/conftest.py sets, so kernels keep their inline default.
        MPLBACKEND=None,
    )
    settings = {
        # Unsaved means unsaved: only the tests save (autosave would race them).
        ("@jupyterlab", "docmanager-extension", "plugin"): {"autosave": False},
    }
    try:
        proc = smoke.start_lab(root, state, port, env=env, settings=settings, app=app)
    except RuntimeError as exc:
        log = state / "lab.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        raise RuntimeError(f"{exc}\n{text[-3000:]}") from None
    return Lab(url=f"http://127.0.0.1:{port}", root=root, state=state, proc=proc)


@pytest.fixture(scope="package")
def lab_api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture(scope="package")
def lab(lab_api: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("jupyterlab")
    root, state = tmp / "root", tmp / "state"
    root.mkdir()
    state.mkdir()
    server = start_lab(root, state, lab_api.url)
    try:
        yield server
    finally:
        smoke.stop_lab(server.proc)  # by its PID: SIGTERM, then kill


@pytest.fixture
def fake(lab_api: FakeAnthropic) -> Iterator[FakeAnthropic]:
    lab_api.clear()
    yield lab_api
    lab_api.clear()


# -- the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="package")
def chromium() -> str:
    return require_chromium()


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """One Playwright for the browser tests: a second sync one cannot start while it runs."""
    pw = sync_playwright().start()
    try:
        yield pw
    finally:
        pw.stop()


@pytest.fixture(scope="package")
def browser(chromium: str, playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def page(browser: Browser, lab: Lab, request: pytest.FixtureRequest) -> Iterator[Page]:
    with browser_page(browser, request.node.name) as p:
        yield p


@contextmanager
def browser_page(browser: Browser, name: str) -> Iterator[Page]:
    """A fresh page; on leaving, its screenshot (pass or fail) and its kernels shut down."""
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    p = context.new_page()
    p.set_default_timeout(30_000)
    errors: list[str] = []
    p.on("console", lambda m: errors.append(f"{m.type}: {m.text}") if m.type == "error" else None)
    p.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    p.console_errors = errors  # type: ignore[attr-defined]
    try:
        yield p
    finally:
        try:
            p.screenshot(path=str(screenshot_path(name)))
        except Exception as exc:  # the test's own failure is the one to report
            print(f"no screenshot for {name}: {exc!r}")
        try:
            # This test's kernels: their notebooks are not reused by other tests.
            p.evaluate(
                "() => window.jupyterapp && window.jupyterapp.serviceManager.sessions.shutdownAll()"
            )
        except Exception as exc:
            print(f"could not shut the kernels down: {exc!r}")
        context.close()


# -- notebooks and page helpers --------------------------------------------------------


def write_notebook(lab: Lab, path: str, cells: list[tuple[str, str]]) -> Path:
    """Write a notebook of code cells `(id, source)` under the server root."""
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "id": cell_id,
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for cell_id, source in cells
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    file = lab.root / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(nb, indent=1))
    return file


def read_sources(file: Path) -> dict[str, str]:
    """Cell id -> source of the notebook on disk."""
    nb = json.loads(file.read_text())
    return {
        c["id"]: "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in nb["cells"]
    }


WATCH_DIALOGS = """
() => {
  window.__dialogs = [];
  const seen = new WeakSet();
  const scan = () => document.querySelectorAll('.jp-Dialog').forEach(d => {
    if (!seen.has(d)) {
      seen.add(d);
      const head = d.querySelector('.jp-Dialog-header');
      window.__dialogs.push((head ? head.textContent : d.textContent).trim());
    }
  });
  new MutationObserver(scan).observe(document.body, { childList: true, subtree: true });
  scan();
}
"""


def open_notebook(page: Page, lab: Lab, path: str, workspace: str) -> None:
    """Open `path` in its own (fresh) workspace; wait for the kernel to be idle.

    Also installs smoke.py's JS helpers and a recorder of every dialog shown
    (`dialogs_seen`)."""
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{path}")
    page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-NotebookPanel')")
    page.evaluate(smoke.JS_HELPERS)
    page.evaluate(WATCH_DIALOGS)
    smoke.wait_kernel_idle(page)


def nbagent_console_errors(page: Page) -> list[str]:
    """Browser console errors (and page errors) that mention nbagent."""
    return [e for e in getattr(page, "console_errors", []) if "nbagent" in e.lower()]


def dialogs_seen(page: Page) -> list[str]:
    return list(page.evaluate("() => window.__dialogs || []"))


def cells(page: Page) -> Locator:
    return page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")


def editor(cell: Locator) -> Locator:
    return cell.locator(".jp-InputArea-editor .cm-content")


def run_cell(page: Page, index: int, timeout: float = 60) -> None:
    """Run cell `index` the way a user does (click its editor, Ctrl+Enter: run in
    place, no new cell) and wait for its execution count."""
    cell = cells(page).nth(index)
    editor(cell).click()
    page.keyboard.press("Control+Enter")
    expect(cell.locator(".jp-InputPrompt")).to_have_text(
        re.compile(r"\[\d+\]"), timeout=timeout * 1000
    )


def open_sidebar(page: Page) -> Locator:
    page.evaluate("() => window.jupyterapp.commands.execute('nbagent:open-chat')")
    sidebar = page.locator("#jp-nbagent-sidebar")
    expect(sidebar.locator(".jp-nbagent-input")).to_be_visible(timeout=15_000)
    return sidebar


def wait_connected(page: Page, timeout: float = 30) -> None:
    """The bridge registered with the kernel (the sidebar shows its status)."""
    expect(page.locator("#jp-nbagent-sidebar .jp-nbagent-status")).to_have_attribute(
        "data-status", "connected", timeout=timeout * 1000
    )


def model_cells(page: Page) -> list[dict[str, Any]]:
    """The open notebook's cells as the frontend's model has them."""
    return list(
        page.evaluate(
            """() => window.__nb().content.model.sharedModel.cells.map(c => ({
                 id: c.id, cell_type: c.cell_type, source: c.getSource(),
                 outputs: c.cell_type === 'code' ? c.getOutputs() : [] }))"""
        )
    )


# -- reading the fake server's requests ---------------------------------------------------


def tool_results(body: dict[str, Any]) -> list[tuple[str, bool]]:
    """(text, is_error) of every tool_result in a request's history, in order."""
    found: list[tuple[str, bool]] = []
    for message in body.get("messages", []):
        content = message.get("content")
        if message.get("role") != "user" or isinstance(content, str):
            continue
        for block in content:
            if block.get("type") != "tool_result":
                continue
            inner = block.get("content")
            if isinstance(inner, str):
                text = inner
            else:
                text = "\n".join(b.get("text", "") for b in inner or [] if b.get("type") == "text")
            found.append((text, bool(block.get("is_error"))))
    return found


class scripted:
    """Wrap a `FakeAnthropic.responder`: an exception in it (a wrong script, an
    unexpected request) ends the agent's turn with a text naming it, and is kept in
    `.failures` for the test to assert on, instead of killing the fake server's
    handler (which the SDK would retry)."""

    def __init__(self, func: Callable[[dict[str, Any]], Response]) -> None:
        self.func = func
        self.failures: list[str] = []

    def __call__(self, body: dict[str, Any]) -> Response:
        try:
            return self.func(body)
        except Exception as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
            return reply(text(f"(test script failed: {exc!r})"))


def assistant_turns(body: dict[str, Any]) -> int:
    return sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
