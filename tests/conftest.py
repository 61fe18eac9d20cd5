"""Shared fixtures. No test reaches the network: the model is the fake server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from nbagent.config import ENV_NAMES
from tests.fake_anthropic import FakeAnthropic


@pytest.fixture(autouse=True)
def _no_real_api(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Block model requests by default: a request without the fake server goes
    to a closed local port, never to the real API."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    """The scripted fake Messages API, wired in through the environment."""
    with FakeAnthropic() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake-test-key")
        yield server


@pytest.fixture
def in_tmp(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """Run in an empty directory, so no stray .env or system_prompt.txt is read."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
