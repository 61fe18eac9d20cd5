"""Choosing a provider: `provider:model` names, keys and endpoints, the tool protocol.

A model is named `provider:model` (`openai:gpt-5.1`, `openrouter:anthropic/claude-opus-4.8`,
`gemini:gemini-2.5-pro`, `ollama:qwen3`); a name without a known `provider:` prefix means
Anthropic. Keys and endpoints come from the variables users already have (environment
first, then `.env`); an explicit `api_key` / `base_url` setting (argument or IPython
config) wins over them. The model table's normalisation of ids serves capabilities and
prices only, never the choice of provider.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..models import model_info
from .openai_compat import Endpoint, OpenAICompatProvider

if TYPE_CHECKING:
    from ..config import Settings
    from .base import Provider

ANTHROPIC = "anthropic"
OLLAMA_DEFAULT_HOST = "127.0.0.1:11434"


@dataclass(frozen=True)
class ProviderSpec:
    """One kind of endpoint: where it is by default and which variables configure it."""

    endpoint: Endpoint
    default_url: str | None
    key_envs: tuple[str, ...] = ()  # the first one set is used
    example: str = ""  # a model name to show in listings and messages
    accepts_images: bool = True
    # Official OpenAI wants max_completion_tokens (its reasoning models refuse max_tokens);
    # other servers know max_tokens.
    token_param: str = "max_tokens"

    @property
    def name(self) -> str:
        return self.endpoint.name


PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            Endpoint(ANTHROPIC, "Anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
            None,
            ("ANTHROPIC_API_KEY",),
            "claude-opus-4-8",
        ),
        ProviderSpec(
            Endpoint("openai", "OpenAI", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
            "https://api.openai.com/v1",
            ("OPENAI_API_KEY",),
            "openai:gpt-5.1",
            token_param="max_completion_tokens",
        ),
        ProviderSpec(
            Endpoint("openrouter", "OpenRouter", "OPENROUTER_API_KEY", None),
            "https://openrouter.ai/api/v1",
            ("OPENROUTER_API_KEY",),
            "openrouter:anthropic/claude-opus-4.8",
        ),
        ProviderSpec(
            Endpoint("gemini", "Gemini", "GEMINI_API_KEY", None),
            "https://generativelanguage.googleapis.com/v1beta/openai/",
            ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            "gemini:gemini-2.5-pro",
        ),
        ProviderSpec(
            Endpoint("ollama", "Ollama", None, "OLLAMA_HOST", True, "start it with `ollama serve`"),
            None,  # from OLLAMA_HOST
            (),
            "ollama:qwen3",
            accepts_images=False,
        ),
        ProviderSpec(
            Endpoint("vllm", "vLLM", None, None, True, "start it with `vllm serve <model>`"),
            "http://127.0.0.1:8000/v1",
            (),
            "vllm:Qwen/Qwen3-8B",
            accepts_images=False,
        ),
        ProviderSpec(
            Endpoint(
                "llamacpp", "llama.cpp", None, None, True, "start it with `llama-server -m <gguf>`"
            ),
            "http://127.0.0.1:8080/v1",
            (),
            "llamacpp:local",
            accepts_images=False,
        ),
        ProviderSpec(
            Endpoint("lmstudio", "LM Studio", None, None, True, "start its local server"),
            "http://127.0.0.1:1234/v1",
            (),
            "lmstudio:qwen3-8b",
            accepts_images=False,
        ),
    )
}

# What a `provider:` prefix looks like; anything else before a colon ("us.anthropic.…-v1:0",
# "qwen3:8b") is part of an Anthropic model id.
_PREFIX = re.compile(r"^[a-z][a-z0-9_-]*$")


def parse_model_name(name: str) -> tuple[str, str]:
    """`"openai:gpt-5.1"` -> `("openai", "gpt-5.1")`; a bare name means Anthropic.

    A prefix that looks like a provider but is not one is a ConfigError (a typo, or a
    local model named without `ollama:`), not a request the API would refuse later.
    """
    name = name.strip()
    prefix, colon, rest = name.partition(":")
    if not colon:
        return ANTHROPIC, name
    key = prefix.lower()
    if key in PROVIDERS:
        if not rest.strip():
            raise ConfigError(f"model {name!r} names no model after {prefix}:")
        return key, rest.strip()
    if _PREFIX.match(prefix) and rest[:1].isalpha():
        known = ", ".join(PROVIDERS)
        raise ConfigError(
            f"unknown provider {prefix!r} in model {name!r}: use one of {known} "
            f"(e.g. ollama:{name} for a local model); a name without a prefix means Anthropic."
        )
    return ANTHROPIC, name


def model_table_id(provider: str, model: str) -> str:
    """The id to look `model` up in the model table: Ollama's size tags (`gemma3:4b`,
    `qwen3:latest`) name variants of one model."""
    if provider == "ollama":
        return model.split(":", 1)[0]
    return model


def wants_xml_tools(provider: str, model: str, tool_protocol: str) -> bool:
    """The xml tool protocol: when set, or (auto) for models the table lists so."""
    if tool_protocol == "xml":
        return True
    if tool_protocol != "auto":
        return False
    return model_info(model_table_id(provider, model)).tool_protocol == "xml"


# --------------------------------------------------------------------------- environment


def read_provider_env(
    env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> dict[str, str]:
    """The provider variables: the environment, then `.env` in `cwd`. `env`, when given,
    replaces both (as it does for `config.resolve`)."""
    names: set[str] = set()
    for spec in PROVIDERS.values():
        names.update(spec.key_envs)
        if spec.endpoint.url_env:
            names.add(spec.endpoint.url_env)
    if env is not None:
        return {n: env[n] for n in names if env.get(n)}
    from ..config import read_dotenv

    values: dict[str, str] = {}
    for key, value in read_dotenv(cwd or Path.cwd()).items():
        if key in names and value:
            values[key] = value
    for key in names:
        if found := os.environ.get(key):
            values[key] = found
    return values


def _explicit(settings: Settings, name: str) -> Any:
    """An `api_key` / `base_url` the user set for nbagent (argument or IPython config);
    the environment source of these settings is Anthropic's variable, not this provider's."""
    if settings.sources.get(name, "argument") in ("argument", "IPython config"):
        return settings.get(name)
    return None


def ollama_base_url(host: str | None) -> str:
    """OLLAMA_HOST as the server takes it (`0.0.0.0`, `host:port`, a URL) -> the /v1 URL."""
    host = (host or OLLAMA_DEFAULT_HOST).strip().rstrip("/")
    if "://" not in host:
        host = f"http://{host}"
    parts = urlsplit(host)
    hostname = parts.hostname or "127.0.0.1"
    if hostname in ("0.0.0.0", "::"):  # a bind-all address: the server is local
        hostname = "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 11434)
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return f"{parts.scheme}://{hostname}:{port}{path}"


def endpoint_settings(
    provider: str, settings: Settings, env: Mapping[str, str] | None = None
) -> tuple[str | None, str | None, str | None]:
    """(api_key, base_url, missing-key message) of a non-Anthropic provider."""
    spec = _spec(provider)
    values = read_provider_env(env)
    api_key = _explicit(settings, "api_key") or next(
        (values[n] for n in spec.key_envs if values.get(n)), None
    )
    base_url: str | None = _explicit(settings, "base_url")
    if base_url is None:
        if provider == "ollama":
            base_url = ollama_base_url(values.get("OLLAMA_HOST"))
        elif spec.endpoint.url_env and values.get(spec.endpoint.url_env):
            base_url = values[spec.endpoint.url_env]
        else:
            base_url = spec.default_url
    missing = None
    if spec.key_envs and not api_key:
        missing = (
            f"{spec.key_envs[0]} is not set: export {spec.key_envs[0]}=... or add that line "
            f"to {Path.cwd() / '.env'} (needed for {spec.example})"
        )
    return api_key, base_url, missing


def _spec(provider: str) -> ProviderSpec:
    spec = PROVIDERS.get(provider)
    if spec is None:
        raise ConfigError(f"unknown provider {provider!r}: use one of {', '.join(PROVIDERS)}")
    return spec


# --------------------------------------------------------------------------- factory


def make_provider(
    provider: str, settings: Settings, *, env: Mapping[str, str] | None = None
) -> Provider:
    """The provider for `provider` with these settings, wrapped in the xml tool protocol
    when `settings.tool_protocol` (or, on auto, the model table) asks for it.

    A missing key is not raised here: the first request raises it as a ConfigError, so
    the turn ends with that one line (as a missing ANTHROPIC_API_KEY does).
    """
    spec = _spec(provider)
    built: Provider
    if provider == ANTHROPIC:
        from .anthropic_api import AnthropicProvider

        built = AnthropicProvider(
            api_key=settings.api_key,
            auth_token=settings.auth_token,
            base_url=settings.base_url,
            max_retries=settings.max_retries,
            timeout=settings.timeout,
        )
    else:
        api_key, base_url, missing = endpoint_settings(provider, settings, env)
        built = OpenAICompatProvider(
            api_key=api_key,
            base_url=base_url,
            endpoint=spec.endpoint,
            max_retries=settings.max_retries,
            timeout=settings.timeout,
            accepts_images=spec.accepts_images,
            token_param=spec.token_param,
            missing_key=missing,
        )
    _, model = parse_model_name(settings.model)
    if wants_xml_tools(provider, model, settings.tool_protocol):
        from .xml_tools import XmlToolProvider

        built = XmlToolProvider(built)
    return built


def provider_key(
    provider: str, settings: Settings, *, env: Mapping[str, str] | None = None
) -> tuple[Any, ...]:
    """Everything `make_provider` reads: rebuild the provider when this changes."""
    _, model = parse_model_name(settings.model)
    common = (
        provider,
        settings.max_retries,
        settings.timeout,
        wants_xml_tools(provider, model, settings.tool_protocol),
    )
    if provider == ANTHROPIC:
        return (*common, settings.api_key, settings.auth_token, settings.base_url)
    return (*common, *endpoint_settings(provider, settings, env))


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class ProviderStatus:
    """One line of `%agent model`: is this provider usable, and how."""

    name: str
    label: str
    configured: bool
    detail: str  # "OPENAI_API_KEY set", "not running at http://...", ...
    example: str

    def line(self) -> str:
        mark = "ok" if self.configured else "--"
        return f"{mark} {self.name:<10} {self.detail}  (e.g. {self.example})"


def configured_providers(
    settings: Settings | None = None,
    *,
    env: Mapping[str, str] | None = None,
    probe_timeout: float = 0.3,
) -> list[ProviderStatus]:
    """Every provider with whether it is usable now: a key is set, or a local server
    answers on its port (a short TCP probe; nothing is sent)."""
    values = read_provider_env(env)
    anthropic_env = dict(env) if env is not None else {}
    out: list[ProviderStatus] = []
    for spec in PROVIDERS.values():
        if spec.name == ANTHROPIC:
            has_key = bool(
                (settings and (settings.api_key or settings.auth_token))
                or anthropic_env.get("ANTHROPIC_API_KEY")
                or (env is None and os.environ.get("ANTHROPIC_API_KEY"))
            )
            detail = "ANTHROPIC_API_KEY set" if has_key else "ANTHROPIC_API_KEY not set"
            out.append(
                ProviderStatus(spec.name, spec.endpoint.label, has_key, detail, spec.example)
            )
            continue
        if spec.key_envs:
            found = next((n for n in spec.key_envs if values.get(n)), None)
            detail = f"{found} set" if found else f"{spec.key_envs[0]} not set"
            out.append(
                ProviderStatus(spec.name, spec.endpoint.label, bool(found), detail, spec.example)
            )
            continue
        if spec.name == "ollama":
            url = ollama_base_url(values.get("OLLAMA_HOST"))
        else:
            url = spec.default_url or ""
        up = _answers(url, probe_timeout)
        detail = f"{'running' if up else 'not running'} at {url}"
        out.append(ProviderStatus(spec.name, spec.endpoint.label, up, detail, spec.example))
    return out


def _answers(url: str, timeout: float) -> bool:
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False
