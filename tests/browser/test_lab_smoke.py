"""`labextension/ui-tests/smoke.py` as a pytest test: every one of its checks must pass.

The script is run as is (its own JupyterLab, no model endpoint); it is loaded by path
since its folder name has a hyphen. Its own screenshots land next to ours in
test-artifacts/browser/, and a last one of the page is taken when its browser closes
(or its run fails).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Playwright

from tests.browser.conftest import load_smoke, screenshot_path


class _Proxy:
    """Forwards everything to `target`, except the attributes given as overrides."""

    def __init__(self, target: Any, **overrides: Any) -> None:
        self._target = target
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._target, name)


class _ScreenshotAtEnd:
    """Stands in for `sync_playwright()` in the script, handing it the session's
    Playwright (a second sync one cannot start while that one runs). Before the
    script's browser closes, or when its `with` block ends after an error, the open
    page is saved to `path`."""

    def __init__(self, pw: Playwright, path: Path) -> None:
        self._pw = pw
        self._path = path
        self._browsers: list[Any] = []
        self.saved = False

    def __enter__(self) -> Any:
        pw = self._pw

        def launch(**kwargs: Any) -> Any:
            browser = pw.chromium.launch(**kwargs)
            self._browsers.append(browser)

            def close(**close_kwargs: Any) -> None:
                self.snap()
                browser.close(**close_kwargs)

            return _Proxy(browser, close=close)

        return _Proxy(pw, chromium=_Proxy(pw.chromium, launch=launch))

    def __exit__(self, *exc: object) -> None:
        self.snap()
        for browser in self._browsers:  # closed by the script unless it failed
            if browser.is_connected():
                browser.close()

    def snap(self) -> None:
        if self.saved:
            return
        for browser in self._browsers:
            for context in browser.contexts:
                for page in context.pages:
                    try:
                        page.screenshot(path=str(self._path))
                    except Exception:
                        continue
                    self.saved = True
                    return


def test_lab_smoke(chromium: str, playwright: Playwright, monkeypatch: pytest.MonkeyPatch) -> None:
    smoke = load_smoke()
    runs: list[Any] = []

    class RecordedChecks(smoke.Checks):  # type: ignore[name-defined, misc]
        def __init__(self) -> None:
            super().__init__()
            runs.append(self)

    final = screenshot_path("test_lab_smoke")
    recorder = _ScreenshotAtEnd(playwright, final)
    monkeypatch.setattr(smoke, "Checks", RecordedChecks)
    monkeypatch.setattr(smoke, "sync_playwright", lambda: recorder)
    monkeypatch.setattr(
        sys, "argv", ["smoke.py", "--screenshot", str(screenshot_path("test_lab_smoke-events"))]
    )

    status = smoke.main()

    assert runs, "smoke.main() ran no checks"
    results = runs[0].results
    failed = [f"{name}: {detail}" for name, ok, detail in results if not ok]
    assert not failed, "smoke checks failed:\n" + "\n".join(failed)
    assert status == 0
    assert len(results) >= 30, [name for name, _, _ in results]
    assert recorder.saved and final.exists()
