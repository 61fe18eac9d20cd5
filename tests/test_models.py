"""The model table: id normalisation, limits, prices and the request options it derives."""

from __future__ import annotations

import pytest

from nbagent.models import (
    EFFORT_LEVELS,
    THINKING_SETTINGS,
    ModelInfo,
    cost_usd,
    describe_request_options,
    effort_param,
    model_info,
    normalize_model_id,
    thinking_param,
    unknown_model_notice,
)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("us.anthropic.claude-opus-4-8-v1:0", "claude-opus-4-8"),
        ("anthropic/claude-opus-4-8", "claude-opus-4-8"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("eu.anthropic.claude-opus-4-7-v2:0", "claude-opus-4-7"),
        ("apac.anthropic.claude-sonnet-4-6", "claude-sonnet-4-6"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4"),
        ("openrouter/anthropic/claude-3.7-sonnet:thinking", "claude-3-7-sonnet"),
        ("anthropic:claude-opus-4-8", "claude-opus-4-8"),
        ("Claude-Opus-4-8 ", "claude-opus-4-8"),
        ("claude-opus-4-8[1m]", "claude-opus-4-8"),
        (
            "arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-fable-5",
            "claude-fable-5",
        ),
    ],
)
def test_normalize_model_id(raw: str, normalised: str) -> None:
    assert normalize_model_id(raw) == normalised


@pytest.mark.parametrize(
    "model",
    ["us.anthropic.claude-opus-4-8-v1:0", "anthropic/claude-opus-4-8", "claude-opus-4-8"],
)
def test_prefixed_ids_get_the_models_capabilities_and_prices(model: str) -> None:
    info = model_info(model)
    assert info.known and info.id == "claude-opus-4-8"
    assert info.adaptive_thinking and info.thinking_display_default == "omitted"
    assert info.context_window == 1_000_000 and info.max_output_tokens == 128_000
    assert (info.input_price, info.output_price) == (5.0, 25.0)
    assert thinking_param(info, "summarized") == {"type": "adaptive", "display": "summarized"}


def test_reference_figures() -> None:
    fable = model_info("claude-fable-5")
    assert (fable.input_price, fable.output_price) == (10.0, 50.0)
    assert fable.thinking_always_on and fable.min_cacheable_tokens == 2048
    assert model_info("claude-mythos-5").effort_levels == EFFORT_LEVELS
    sonnet = model_info("claude-sonnet-4-6")
    assert (sonnet.max_output_tokens, sonnet.thinking_display_default) == (64_000, "summarized")
    assert (sonnet.input_price, sonnet.min_cacheable_tokens) == (3.0, 2048)
    haiku = model_info("claude-haiku-4-5-20251001")
    assert (haiku.context_window, haiku.max_output_tokens) == (200_000, 64_000)
    assert (haiku.input_price, haiku.min_cacheable_tokens) == (1.0, 4096)
    assert model_info("claude-opus-4-6").thinking_display_default == "summarized"
    assert model_info("claude-opus-4-7").thinking_display_default == "omitted"
    assert model_info("claude-3-haiku-20240307").input_price == 0.25
    assert model_info("claude-opus-4-1").input_price == 15.0
    assert model_info("claude-opus-4-0").known and model_info("claude-sonnet-4-0").known


def test_longest_family_wins_and_unknown_versions_are_unknown() -> None:
    assert model_info("claude-opus-4-20250514").input_price == 15.0  # Opus 4
    assert model_info("claude-opus-4-5-20251101").input_price == 5.0  # not Opus 4
    assert model_info("claude-opus-4-8-fast").id == "claude-opus-4-8-fast"
    assert model_info("claude-opus-4-8-fast").known
    # A later minor version is not Opus 4 (or 4.1) by prefix.
    assert not model_info("claude-opus-4-10").known


def test_unknown_model_is_conservative_and_has_no_price() -> None:
    info = model_info("llama3.1:8b")
    assert isinstance(info, ModelInfo)
    assert not info.known
    assert not info.adaptive_thinking and info.effort_levels == ()
    assert info.context_window == 200_000 and info.max_output_tokens <= 8_192
    assert info.input_price is None and info.cache_read_price is None
    notice = unknown_model_notice("llama3.1:8b")
    assert notice is not None and "unknown" in notice and "\n" not in notice
    assert unknown_model_notice("us.anthropic.claude-opus-4-8-v1:0") is None


def test_cost_usd() -> None:
    # 1M uncached in, 1M out, 1M cache writes (1.25x) and 1M cache reads (0.1x) on Opus 4.8.
    cost = cost_usd("claude-opus-4-8", 1_000_000, 1_000_000, 1_000_000, 1_000_000)
    assert cost == pytest.approx(5.0 + 25.0 + 6.25 + 0.5)
    assert cost_usd("us.anthropic.claude-haiku-4-5-20251001-v1:0", 1_000_000, 0) == 1.0
    assert cost_usd("claude-fable-5", 0, 1_000) == pytest.approx(0.05)
    assert cost_usd("my-local-model", 1_000, 1_000) is None
    info = model_info("claude-sonnet-4-6")
    assert (info.cache_write_price, info.cache_read_price) == (3.75, pytest.approx(0.3))


@pytest.mark.parametrize(
    ("model", "setting", "expected"),
    [
        ("claude-opus-4-8", "summarized", {"type": "adaptive", "display": "summarized"}),
        ("claude-opus-4-8", "adaptive", {"type": "adaptive", "display": "summarized"}),
        ("claude-opus-4-7", "omitted", {"type": "adaptive", "display": "omitted"}),
        ("claude-fable-5", "summarized", {"type": "adaptive", "display": "summarized"}),
        ("claude-sonnet-4-6", "adaptive", {"type": "adaptive", "display": "summarized"}),
        ("claude-opus-4-8", "off", None),
        ("claude-fable-5", "off", None),  # never {"type": "disabled"}: Fable 5 rejects it
        ("claude-haiku-4-5", "summarized", None),
        ("claude-opus-4-5", "adaptive", None),
        ("some-local-model", "summarized", None),
    ],
)
def test_thinking_param(model: str, setting: str, expected: dict[str, str] | None) -> None:
    assert thinking_param(model_info(model), setting) == expected


def test_thinking_settings_and_invalid_setting() -> None:
    assert THINKING_SETTINGS == ("summarized", "adaptive", "omitted", "off")
    with pytest.raises(ValueError, match="thinking must be one of"):
        thinking_param(model_info("claude-opus-4-8"), "loud")


@pytest.mark.parametrize(
    ("model", "effort", "sent", "dropped"),
    [
        ("claude-opus-4-8", "xhigh", "xhigh", False),
        ("claude-opus-4-7", "max", "max", False),
        ("claude-fable-5", "xhigh", "xhigh", False),
        ("claude-opus-4-6", "xhigh", None, True),  # xhigh arrived with Opus 4.7
        ("claude-opus-4-6", "max", "max", False),
        ("claude-sonnet-4-6", "low", "low", False),
        ("claude-opus-4-5", "high", "high", False),
        ("claude-opus-4-5", "max", None, True),
        ("claude-haiku-4-5", "low", None, True),  # Haiku 4.5 rejects effort
        ("claude-sonnet-4-5", "high", None, True),
        ("claude-opus-4-8", "extreme", None, True),
        ("claude-opus-4-8", None, None, False),
        ("claude-haiku-4-5", None, None, False),
    ],
)
def test_effort_param(model: str, effort: str | None, sent: str | None, dropped: bool) -> None:
    value, notice = effort_param(model_info(model), effort)
    assert value == sent
    assert (notice is not None) == dropped
    if notice is not None:
        assert repr(effort) in notice and "\n" not in notice


def test_describe_request_options_says_what_is_sent() -> None:
    opus = model_info("claude-opus-4-8")
    assert describe_request_options(opus, "adaptive", "xhigh") == {
        "thinking": "adaptive, display summarized",
        "effort": "xhigh",
    }
    assert describe_request_options(opus, "off", None) == {
        "thinking": "off",
        "effort": "not sent (API default: high)",
    }
    haiku = describe_request_options(model_info("claude-haiku-4-5"), "adaptive", "low")
    assert haiku["thinking"] == "off (claude-haiku-4-5 has no adaptive thinking)"
    assert haiku["effort"].startswith("effort 'low' not sent")
    fable = describe_request_options(model_info("claude-fable-5"), "off", None)
    assert fable["thinking"].startswith("not sent (claude-fable-5 always thinks")
