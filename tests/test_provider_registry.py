"""Choosing a provider: `provider:model` names, keys and endpoints from the variables
users have, explicit settings over them, the xml protocol's switch, and the listing."""

from __future__ import annotations

from typing import Any

import pytest

from nbagent.config import resolve
from nbagent.errors import ConfigError
from nbagent.providers.anthropic_api import AnthropicProvider
from nbagent.providers.openai_compat import OpenAICompatProvider
from nbagent.providers.registry import (
    configured_providers,
    make_provider,
    ollama_base_url,
    parse_model_name,
    provider_key,
)
from nbagent.providers.xml_tools import XmlToolProvider
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.usefixtures("in_tmp")

PROVIDER_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENROUTER_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "OLLAMA_HOST",
)


@pytest.fixture(autouse=True)
def _no_provider_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROVIDER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def settings(env: dict[str, str] | None = None, **explicit: Any):
    return resolve(explicit, env=env or {})


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("openai:gpt-5.1", ("openai", "gpt-5.1")),
        ("anthropic:claude-opus-4-8", ("anthropic", "claude-opus-4-8")),
        ("openrouter:anthropic/claude-opus-4.8", ("openrouter", "anthropic/claude-opus-4.8")),
        ("gemini:gemini-2.5-pro", ("gemini", "gemini-2.5-pro")),
        ("ollama:qwen3", ("ollama", "qwen3")),
        ("ollama:gemma3:4b", ("ollama", "gemma3:4b")),
        ("OpenAI:gpt-4o", ("openai", "gpt-4o")),
        ("claude-opus-4-8", ("anthropic", "claude-opus-4-8")),
        # Bedrock ids carry a colon that is no provider prefix
        ("us.anthropic.claude-opus-4-8-v1:0", ("anthropic", "us.anthropic.claude-opus-4-8-v1:0")),
    ],
)
def test_parse_model_name(name, parsed):
    assert parse_model_name(name) == parsed


def test_an_unknown_provider_prefix_is_one_clear_line():
    with pytest.raises(ConfigError) as caught:
        parse_model_name("gemma3:latest")
    message = str(caught.value)
    assert "unknown provider 'gemma3'" in message and "ollama:gemma3:latest" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match="names no model"):
        parse_model_name("openai:")


def test_keys_and_base_urls_come_from_the_providers_variables():
    env = {
        "OPENAI_API_KEY": "sk-openai",
        "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1",
        "OPENROUTER_API_KEY": "sk-or",
        "GOOGLE_API_KEY": "g-key",
        "ANTHROPIC_API_KEY": "sk-ant",
    }
    s = settings(env, model="openai:gpt-5.1")
    openai_p = make_provider("openai", s, env=env)
    assert isinstance(openai_p, OpenAICompatProvider)
    assert openai_p._options["api_key"] == "sk-openai"
    assert openai_p.base_url == "http://127.0.0.1:8000/v1"
    assert openai_p.token_param == "max_completion_tokens"

    router = make_provider("openrouter", settings(env, model="openrouter:x/y"), env=env)
    assert router._options["api_key"] == "sk-or" and "openrouter" in (router.base_url or "")
    gemini = make_provider("gemini", settings(env, model="gemini:gemini-2.5-pro"), env=env)
    assert gemini._options["api_key"] == "g-key", "GOOGLE_API_KEY when GEMINI_API_KEY is unset"

    anthropic_p = make_provider("anthropic", settings(env, model="claude-opus-4-8"), env=env)
    assert isinstance(anthropic_p, AnthropicProvider)


def test_anthropics_key_never_goes_to_another_provider():
    env = {"ANTHROPIC_API_KEY": "sk-ant-secret", "ANTHROPIC_BASE_URL": "http://127.0.0.1:1"}
    provider = make_provider("openai", settings(env, model="openai:gpt-5.1"), env=env)
    assert provider._options["api_key"] != "sk-ant-secret"
    assert provider.base_url != "http://127.0.0.1:1"
    assert provider.missing_key is not None
    assert provider.missing_key.startswith("OPENAI_API_KEY is not set")


def test_explicit_api_key_and_base_url_win():
    env = {"OPENAI_API_KEY": "from-env"}
    s = settings(env, model="openai:gpt-5.1", api_key="explicit", base_url="http://127.0.0.1:5/v1")
    provider = make_provider("openai", s, env=env)
    assert provider._options["api_key"] == "explicit"
    assert provider.base_url == "http://127.0.0.1:5/v1"
    assert provider.missing_key is None


@pytest.mark.parametrize(
    ("host", "url"),
    [
        (None, "http://127.0.0.1:11434/v1"),
        ("0.0.0.0", "http://127.0.0.1:11434/v1"),
        ("gpu-box:9999", "http://gpu-box:9999/v1"),
        ("https://ollama.example/", "https://ollama.example:443/v1"),
        ("http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1"),
    ],
)
def test_ollama_host_forms(host, url):
    assert ollama_base_url(host) == url


def test_ollama_needs_no_key_and_uses_ollama_host():
    env = {"OLLAMA_HOST": "127.0.0.1:5555"}
    provider = make_provider("ollama", settings(env, model="ollama:qwen3"), env=env)
    assert provider.base_url == "http://127.0.0.1:5555/v1"
    assert provider.missing_key is None and provider.endpoint.local


def test_the_xml_protocol_turns_on_for_listed_models_or_when_set():
    env = {"OPENAI_API_KEY": "k"}
    gemma = make_provider("ollama", settings(env, model="ollama:gemma3:4b"))
    assert isinstance(gemma, XmlToolProvider), "listed as xml in the model table"
    qwen = make_provider("ollama", settings(env, model="ollama:qwen3"))
    assert isinstance(qwen, OpenAICompatProvider), "free-form local names stay native"
    forced = make_provider("ollama", settings(env, model="ollama:qwen3", tool_protocol="xml"))
    assert isinstance(forced, XmlToolProvider)
    native = make_provider("ollama", settings(env, model="ollama:gemma3", tool_protocol="native"))
    assert isinstance(native, OpenAICompatProvider)
    assert isinstance(
        make_provider("anthropic", settings(env, model="claude-opus-4-8", tool_protocol="xml")),
        XmlToolProvider,
    ), "it works with every provider"


def test_provider_key_changes_with_what_the_provider_reads():
    env = {"OPENAI_API_KEY": "a"}
    s = settings(env, model="openai:gpt-5.1")
    assert provider_key("openai", s, env=env) == provider_key("openai", s, env=env)
    assert provider_key("openai", s, env=env) != provider_key(
        "openai", s, env={"OPENAI_API_KEY": "b"}
    )
    xml = settings(env, model="openai:gpt-5.1", tool_protocol="xml")
    assert provider_key("openai", s, env=env) != provider_key("openai", xml, env=env)


def test_configured_providers_lists_keys_and_running_local_servers():
    with FakeOpenAI() as server:
        host = server.host
        env = {"OPENAI_API_KEY": "k", "OLLAMA_HOST": host}
        statuses = {s.name: s for s in configured_providers(env=env)}
    assert statuses["openai"].configured and statuses["openai"].detail == "OPENAI_API_KEY set"
    assert not statuses["openrouter"].configured
    assert statuses["openrouter"].detail == "OPENROUTER_API_KEY not set"
    assert statuses["ollama"].configured
    assert statuses["ollama"].detail == f"running at http://{host}/v1"
    assert not statuses["anthropic"].configured
    assert statuses["openai"].line().startswith("ok openai")
    assert statuses["gemini"].line().startswith("-- gemini")


def test_configured_providers_says_when_ollama_is_not_running():
    statuses = {s.name: s for s in configured_providers(env={"OLLAMA_HOST": "127.0.0.1:9"})}
    assert not statuses["ollama"].configured
    assert statuses["ollama"].detail == "not running at http://127.0.0.1:9/v1"


def test_provider_variables_are_read_from_dotenv_too(in_tmp, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (in_tmp / ".env").write_text("OPENAI_API_KEY=sk-from-dotenv\n")
    provider = make_provider("openai", resolve({"model": "openai:gpt-5.1"}))
    assert provider._options["api_key"] == "sk-from-dotenv"
