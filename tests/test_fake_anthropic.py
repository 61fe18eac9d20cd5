"""Checks the fake Anthropic server against the real ``anthropic`` SDK."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import httpx2  # the transport used by anthropic>=2.12 (NOT ``httpx``)
import pytest

from nbagent.models import model_info

try:
    from tests.fake_anthropic import (
        CACHE_LOOKBACK_BLOCKS,
        COMPACTION_BETA,
        EFFORT_LEVELS,
        IMAGE_TOKENS,
        MAX_CACHE_BREAKPOINTS,
        MIN_COMPACTION_TRIGGER,
        FakeAnthropic,
        api_rejection,
        cache_minimum,
        compaction_supported,
        cut,
        env_for,
        error,
        prompt_tokens,
        reply,
        text,
        thinking,
        thinking_display,
        tool_use,
    )
except ImportError:  # tests/ not importable as a package
    from fake_anthropic import (  # type: ignore[no-redef]
        CACHE_LOOKBACK_BLOCKS,
        COMPACTION_BETA,
        EFFORT_LEVELS,
        IMAGE_TOKENS,
        MAX_CACHE_BREAKPOINTS,
        MIN_COMPACTION_TRIGGER,
        FakeAnthropic,
        api_rejection,
        cache_minimum,
        compaction_supported,
        cut,
        env_for,
        error,
        prompt_tokens,
        reply,
        text,
        thinking,
        thinking_display,
        tool_use,
    )

MODEL = "claude-test-model"
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as s:
        yield s


def client(server: FakeAnthropic, max_retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="sk-ant-fake", max_retries=max_retries)


def stream_final(c: anthropic.Anthropic, **kw: Any) -> Any:
    with c.messages.stream(**{"model": MODEL, "max_tokens": 100, "messages": MESSAGES, **kw}) as s:
        return s.get_final_message()


def create(c: anthropic.Anthropic, **kw: Any) -> Any:
    return c.messages.create(**{"model": MODEL, "max_tokens": 100, "messages": MESSAGES, **kw})


def raw_post(url: str, body: Any) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


# --------------------------------------------------------------------------- streaming


def test_stream_text_accumulates(server: FakeAnthropic) -> None:
    long = "The quick brown fox jumps over the lazy dog. " * 5
    server.enqueue(reply(text(long, chunk=7)))
    msg = stream_final(client(server))
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == long
    assert msg.stop_reason == "end_turn"
    assert msg.model == MODEL
    assert msg.id.startswith("msg_fake_")
    assert msg.usage.input_tokens >= 1 and msg.usage.output_tokens >= 1


def test_stream_emits_real_sse_sequence(server: FakeAnthropic) -> None:
    server.enqueue(reply(text("abcdef", chunk=2)))
    status, headers, raw = raw_post(
        server.url + "/v1/messages", {"model": MODEL, "stream": True, "messages": []}
    )
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = [e for e in raw.decode().split("\n\n") if e]
    names = [e.split("\n")[0].removeprefix("event: ") for e in events]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    datas = [json.loads(e.split("\n")[1].removeprefix("data: ")) for e in events]
    assert all(d["type"] == n for d, n in zip(datas, names, strict=True))
    start = datas[0]["message"]
    assert (
        start["content"] == []
        and start["stop_reason"] is None
        and start["usage"]["output_tokens"] == 1
    )
    assert [d["delta"]["text"] for d in datas[3:6]] == ["ab", "cd", "ef"]
    assert datas[7]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


def test_stream_thinking_signature_and_tool_use(server: FakeAnthropic) -> None:
    args = {
        "command": "ls -la /tmp",
        "timeout": 30,
        "nested": {"a": [1, 2, 3], "b": None, "u": "é✓"},
    }
    server.enqueue(
        reply(
            thinking("I should list the directory first. " * 3, signature="sig-abc123"),
            text("Let me check."),
            tool_use("bash", args, chunk=4),
        )
    )
    msg = stream_final(client(server))
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
    assert msg.content[0].thinking == "I should list the directory first. " * 3
    assert msg.content[0].signature == "sig-abc123"
    assert msg.content[1].text == "Let me check."
    tu = msg.content[2]
    assert (tu.name, tu.input) == ("bash", args)
    assert tu.id.startswith("toolu_fake_")
    assert msg.stop_reason == "tool_use"


def test_tool_ids_unique_and_explicit(server: FakeAnthropic) -> None:
    server.enqueue(
        reply(tool_use("a", {}), tool_use("b", {"x": 1})),
        reply(tool_use("c", {}, id="toolu_mine")),
    )
    c = client(server)
    first = stream_final(c)
    second = create(c)
    ids = [b.id for b in first.content]
    assert len(set(ids)) == 2 and all(i.startswith("toolu_fake_") for i in ids)
    assert second.content[0].id == "toolu_mine"


def test_text_event_stream_is_incremental(server: FakeAnthropic) -> None:
    server.enqueue(reply(text("0123456789", chunk=3)))
    with client(server).messages.stream(model=MODEL, max_tokens=10, messages=MESSAGES) as s:
        assert list(s.text_stream) == ["012", "345", "678", "9"]


# --------------------------------------------------------------------------- non-stream


def test_non_stream_json(server: FakeAnthropic) -> None:
    server.enqueue(
        reply(
            thinking("hmm", signature="sig-x"),
            text("hi"),
            tool_use("read", {"path": "a.txt"}),
            usage={"input_tokens": 123, "cache_read_input_tokens": 7},
            model="claude-other",
        )
    )
    msg = create(client(server))
    assert msg.model == "claude-other"
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
    assert (msg.content[0].thinking, msg.content[0].signature) == ("hmm", "sig-x")
    assert msg.content[2].input == {"path": "a.txt"}
    assert msg.stop_reason == "tool_use"
    assert msg.usage.input_tokens == 123
    assert msg.usage.cache_read_input_tokens == 7
    assert msg.usage.cache_creation_input_tokens == 0


def test_str_shorthand_and_stop_reasons(server: FakeAnthropic) -> None:
    server.enqueue(
        "plain",
        reply(text("cut off"), stop_reason="max_tokens"),
        reply("p", stop_reason="pause_turn"),
    )
    c = client(server)
    m1 = create(c)
    assert (m1.content[0].text, m1.stop_reason) == ("plain", "end_turn")
    assert stream_final(c).stop_reason == "max_tokens"
    assert create(c).stop_reason == "pause_turn"
    with pytest.raises(ValueError):
        reply(text("x"), stop_reason="bogus")


# --------------------------------------------------------------------------- errors


def test_529_is_retried_then_succeeds(server: FakeAnthropic) -> None:
    server.enqueue(error(529, "Overloaded", retry_after=0), "recovered")
    t0 = time.monotonic()
    msg = stream_final(client(server, max_retries=2))
    assert msg.content[0].text == "recovered"
    assert len(server.requests) == 2
    assert server.requests[1]["headers"]["x-stainless-retry-count"] == "1"
    assert time.monotonic() - t0 < 0.4  # retry-after-ms honoured, no SDK backoff


def test_429_raises_rate_limit_error(server: FakeAnthropic) -> None:
    server.enqueue(error(429, "slow down", retry_after=0))
    with pytest.raises(anthropic.RateLimitError) as ei:
        create(client(server, max_retries=0))
    assert ei.value.status_code == 429
    assert ei.value.body == {
        "type": "rate_limit_error",
        "message": "slow down",
    } or "slow down" in str(ei.value)
    assert ei.value.response.headers["x-should-retry"] == "true"
    assert ei.value.response.headers["retry-after"] == "0"


@pytest.mark.parametrize(
    ("status", "exc", "etype"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.InternalServerError, "overloaded_error"),
    ],
)
def test_error_types(server: FakeAnthropic, status: int, exc: type[Exception], etype: str) -> None:
    server.enqueue(error(status, "boom"))
    with pytest.raises(exc) as ei:
        create(client(server))
    assert etype in str(ei.value)


def test_empty_queue_is_500(server: FakeAnthropic) -> None:
    with pytest.raises(anthropic.InternalServerError) as ei:
        create(client(server))
    assert "fake server: no scripted response left" in str(ei.value)
    assert len(server.requests) == 1


def test_unknown_path_404_and_count_tokens(server: FakeAnthropic) -> None:
    status, _, raw = raw_post(server.url + "/v1/nope", {})
    assert status == 404
    body = json.loads(raw)
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    n = client(server).messages.count_tokens(model=MODEL, messages=MESSAGES)
    assert n.input_tokens >= 1


# --------------------------------------------------------------------------- dropped streams


def test_cut_stream_raises(server: FakeAnthropic) -> None:
    # The SDK does not wrap errors raised while iterating an SSE body: a dropped
    # stream surfaces as the transport's own httpx2.RemoteProtocolError.
    server.enqueue(cut(reply(text("partial answer " * 10, chunk=5)), after_events=5), "after")
    c = client(server, max_retries=2)
    seen: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        with c.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as s:
            for chunk in s.text_stream:
                seen.append(chunk)
    assert seen == ["parti", "al an"]  # message_start, ping, block_start, 2 deltas
    assert len(server.requests) == 1  # not retried mid-stream
    assert create(c).content[0].text == "after"  # server still healthy


def test_cut_non_stream_raises_connection_error(server: FakeAnthropic) -> None:
    server.enqueue(cut("never sent", after_events=0))
    with pytest.raises(anthropic.APIConnectionError):
        create(client(server))


# --------------------------------------------------------------------------- scripting


def test_requests_recorded(server: FakeAnthropic) -> None:
    server.enqueue("a", "b")
    c = client(server)
    create(c, system="be brief")
    stream_final(c, stop_sequences=["END"])
    reqs = server.requests
    assert [r["path"] for r in reqs] == ["/v1/messages", "/v1/messages"]
    assert reqs[0]["body"]["system"] == "be brief"
    assert reqs[0]["body"]["messages"] == MESSAGES
    assert "stream" not in reqs[0]["body"] or reqs[0]["body"]["stream"] is False
    assert reqs[1]["body"]["stream"] is True
    assert server.last_body is not None and server.last_body["stop_sequences"] == ["END"]
    assert reqs[0]["headers"]["content-type"] == "application/json"
    assert "anthropic-version" in reqs[0]["headers"]
    server.clear()
    assert server.requests == [] and server.last_body is None and server.pending == 0


def test_responder_used_when_queue_empty(server: FakeAnthropic) -> None:
    server.responder = lambda body: reply(text(f"echo: {body['messages'][-1]['content']}"))
    server.enqueue("queued first")
    c = client(server)
    assert create(c).content[0].text == "queued first"
    assert stream_final(c).content[0].text == "echo: Hello there"
    assert create(c).content[0].text == "echo: Hello there"


def test_many_concurrent_requests_are_fast(server: FakeAnthropic) -> None:
    server.responder = lambda body: reply(text(body["messages"][0]["content"] * 3))
    c = client(server)
    t0 = time.monotonic()

    def one(i: int) -> str:
        msgs = [{"role": "user", "content": f"m{i}"}]
        with c.messages.stream(model=MODEL, max_tokens=10, messages=msgs) as s:
            return s.get_final_message().content[0].text

    with ThreadPoolExecutor(8) as pool:
        out = list(pool.map(one, range(60)))
    assert out == [f"m{i}" * 3 for i in range(60)]
    assert len(server.requests) == 60
    assert time.monotonic() - t0 < 5


def test_delay_slows_stream_and_interrupt_is_prompt(server: FakeAnthropic) -> None:
    delay = 0.04
    server.enqueue(reply(text("abcdef", chunk=2), delay=delay))  # 9 events -> 8 sleeps
    t0 = time.monotonic()
    stream_final(client(server))
    assert time.monotonic() - t0 >= delay * 8 * 0.5

    server.enqueue(reply(text("x" * 100, chunk=1), delay=0.05))  # ~5 s if fully read
    t0 = time.monotonic()
    with client(server).messages.stream(model=MODEL, max_tokens=10, messages=MESSAGES) as s:
        first = next(iter(s.text_stream))
    assert first == "x"
    assert time.monotonic() - t0 < 1.5
    server.enqueue("still alive")
    assert create(client(server)).content[0].text == "still alive"


def test_env_for_and_lifecycle(monkeypatch: pytest.MonkeyPatch) -> None:
    s = FakeAnthropic(start=False)
    s.start()
    try:
        env = env_for(s)
        assert env["ANTHROPIC_BASE_URL"] == s.url and s.url.startswith("http://127.0.0.1:")
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        s.enqueue("from env")
        assert (
            anthropic.Anthropic(max_retries=0)
            .messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)
            .content[0]
            .text
            == "from env"
        )
    finally:
        s.stop()
    with pytest.raises(RuntimeError):
        _ = s.url


# --------------------------------------------------------------------------- the API's model rules

SUMMARIZED = {"type": "adaptive", "display": "summarized"}


def sse_events(server: FakeAnthropic, body: dict[str, Any]) -> list[dict[str, Any]]:
    status, _, raw = raw_post(server.url + "/v1/messages", {**body, "stream": True})
    assert status == 200, raw
    return [
        json.loads(e.split("\n")[1].removeprefix("data: ")) for e in raw.decode().split("\n\n") if e
    ]


@pytest.mark.parametrize(
    "model", ["claude-opus-4-8", "claude-opus-4-7", "claude-fable-5", "claude-mythos-5"]
)
def test_thinking_text_is_omitted_by_default_on_newest_models(
    server: FakeAnthropic, model: str
) -> None:
    server.enqueue(reply(thinking("private musing", signature="sig-1"), text("Hi.")))
    events = sse_events(
        server, {"model": model, "messages": MESSAGES, "thinking": {"type": "adaptive"}}
    )
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert [d["type"] for d in deltas] == ["signature_delta", "text_delta"]
    assert deltas[0]["signature"] == "sig-1"

    server.enqueue(reply(thinking("private musing"), text("Hi.")))
    msg = stream_final(client(server), model=model)  # no thinking parameter at all
    assert msg.content[0].type == "thinking" and msg.content[0].thinking == ""
    assert msg.content[0].signature


def test_thinking_text_streams_when_summarized_is_asked(server: FakeAnthropic) -> None:
    server.enqueue(reply(thinking("step one, step two", chunk=5), text("Done.")))
    events = sse_events(
        server, {"model": "claude-opus-4-8", "messages": MESSAGES, "thinking": SUMMARIZED}
    )
    thoughts = [
        e["delta"]["thinking"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "thinking_delta"
    ]
    assert "".join(thoughts) == "step one, step two" and len(thoughts) == 4

    server.enqueue(reply(thinking("visible"), text("Done.")))
    msg = create(client(server), model="claude-fable-5", thinking=SUMMARIZED)  # non-streaming
    assert msg.content[0].thinking == "visible"


def test_thinking_display_defaults_to_summarized_before_opus_4_7(server: FakeAnthropic) -> None:
    server.enqueue(reply(thinking("shown by default"), text("ok")))
    msg = stream_final(client(server), model="claude-opus-4-6", thinking={"type": "adaptive"})
    assert msg.content[0].thinking == "shown by default"
    omitted = {"type": "adaptive", "display": "omitted"}
    server.enqueue(reply(thinking("hidden on request"), text("ok")))
    msg = stream_final(client(server), model="claude-sonnet-4-6", thinking=omitted)
    assert msg.content[0].thinking == ""


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"model": "claude-haiku-4-5", "output_config": {"effort": "low"}}, "effort"),
        ({"model": "claude-haiku-4-5-20251001", "output_config": {"effort": "high"}}, "effort"),
        ({"model": "claude-opus-4-6", "output_config": {"effort": "xhigh"}}, "xhigh"),
        ({"model": MODEL, "output_config": {"effort": "extreme"}}, "effort"),
        (
            {"model": "claude-opus-4-8", "thinking": SUMMARIZED, "tool_choice": {"type": "any"}},
            "tool_choice",
        ),
        (
            {
                "model": MODEL,
                "thinking": {"type": "adaptive"},
                "tool_choice": {"type": "tool", "name": "bash"},
            },
            "tool_choice",
        ),
        ({"model": "claude-fable-5", "tool_choice": {"type": "any"}}, "tool_choice"),
        ({"model": "claude-haiku-4-5", "thinking": {"type": "adaptive"}}, "adaptive"),
        (
            {"model": "claude-opus-4-8", "thinking": {"type": "enabled", "budget_tokens": 2048}},
            "enabled",
        ),
        ({"model": "claude-fable-5", "thinking": {"type": "disabled"}}, "disabled"),
        ({"model": MODEL, "thinking": {"type": "adaptive", "display": "full"}}, "display"),
    ],
)
def test_api_rejects_what_the_real_api_rejects(
    server: FakeAnthropic, kw: dict[str, Any], message: str
) -> None:
    server.enqueue("never sent")
    tools = [{"name": "bash", "input_schema": {"type": "object"}}]
    body = {"max_tokens": 100, "messages": MESSAGES, "tools": tools, **kw}
    with pytest.raises(anthropic.BadRequestError) as info:
        client(server).messages.create(**body)
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert message in info.value.message
    assert server.pending == 1, "a rejected request does not consume a scripted reply"
    assert server.last_body is not None and server.last_body["model"] == kw["model"]


def test_api_accepts_valid_effort_and_tool_choice(server: FakeAnthropic) -> None:
    tools = [{"name": "bash", "input_schema": {"type": "object"}}]
    server.enqueue("a", "b", "c", "d")
    c = client(server)
    create(c, model="claude-opus-4-8", output_config={"effort": "xhigh"}, thinking=SUMMARIZED)
    create(c, model="claude-sonnet-4-6", output_config={"effort": "max"})
    # "none" and "auto" do not force a tool: allowed with thinking (the agent's last round).
    create(
        c, model="claude-opus-4-8", thinking=SUMMARIZED, tools=tools, tool_choice={"type": "none"}
    )
    create(c, model="claude-haiku-4-5", tools=tools, tool_choice={"type": "any"})
    assert server.pending == 0


@pytest.mark.parametrize(
    "model",
    [
        "claude-fable-5",
        "claude-mythos-5",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
        "claude-opus-4-5",
        "claude-sonnet-4-5",
        "claude-opus-4-1",
        "claude-opus-4-0",
        "claude-sonnet-4-0",
        "claude-3-haiku-20240307",
    ],
)
def test_fake_api_rules_agree_with_the_model_table(model: str) -> None:
    """The fake plays the API independently; here it and nbagent.models must tell one story."""
    info = model_info(model)
    assert info.known
    default = thinking_display({"model": model})
    assert default == (info.thinking_display_default or "summarized")
    taken = tuple(
        level
        for level in EFFORT_LEVELS
        if api_rejection({"model": model, "output_config": {"effort": level}}) is None
    )
    assert taken == info.effort_levels
    adaptive_ok = api_rejection({"model": model, "thinking": {"type": "adaptive"}}) is None
    assert adaptive_ok == info.adaptive_thinking
    assert cache_minimum(model) == info.min_cacheable_tokens
    assert compaction_supported(model) == info.server_compaction


# --------------------------------------------------------------------- tokens, caching, context


def words(tokens: int, tag: str = "") -> str:
    """A text the fake counts as exactly `tokens` tokens (4 characters each)."""
    return (tag + "abcd" * tokens)[: 4 * tokens]


def marked(text_: str) -> dict[str, Any]:
    return {"type": "text", "text": text_, "cache_control": {"type": "ephemeral"}}


def usage_of(server: FakeAnthropic, **body: Any) -> Any:
    server.enqueue("ok")
    return create(client(server), **body).usage


def test_usage_and_count_tokens_use_one_count(server: FakeAnthropic) -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "A" * 9999},
    }
    messages = [{"role": "user", "content": [{"type": "text", "text": words(300)}, image]}]
    body = {"model": MODEL, "system": words(100), "messages": messages}
    assert prompt_tokens(body) == 100 + 300 + IMAGE_TOKENS
    counted = client(server).messages.count_tokens(**body)
    assert counted.input_tokens == 100 + 300 + IMAGE_TOKENS
    u = usage_of(server, **body)
    assert u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens == 2000


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK's, for Sonnet 4.5
@pytest.mark.parametrize(
    ("model", "minimum"),
    [("claude-opus-4-8", 4096), ("claude-sonnet-4-6", 2048), ("claude-sonnet-4-5", 1024)],
)
def test_a_prefix_under_the_model_minimum_is_not_cached(
    server: FakeAnthropic, model: str, minimum: int
) -> None:
    short = [marked(words(minimum - 1, "short"))]
    assert usage_of(server, model=model, system=short).cache_creation_input_tokens == 0
    assert usage_of(server, model=model, system=short).cache_read_input_tokens == 0
    long = [marked(words(minimum, "long"))]
    assert usage_of(server, model=model, system=long).cache_creation_input_tokens == minimum
    again = usage_of(server, model=model, system=long)
    assert (again.cache_read_input_tokens, again.input_tokens) == (minimum, 2)  # "Hello there"


def conversation(blocks: int, mark_at: int | None) -> list[dict[str, Any]]:
    """One user message of `blocks` text blocks of 100 tokens, `mark_at` one marked."""
    content: list[dict[str, Any]] = [
        {"type": "text", "text": words(100, f"b{i}-")} for i in range(blocks)
    ]
    if mark_at is not None:
        content[mark_at] = {**content[mark_at], "cache_control": {"type": "ephemeral"}}
    return [{"role": "user", "content": content}]


@pytest.mark.parametrize("gap", [CACHE_LOOKBACK_BLOCKS, CACHE_LOOKBACK_BLOCKS + 1])
def test_a_breakpoint_looks_back_at_most_20_blocks(server: FakeAnthropic, gap: int) -> None:
    system = [marked(words(2048))]
    model = "claude-sonnet-4-6"
    first = usage_of(server, model=model, system=system, messages=conversation(30, 4))
    assert first.cache_creation_input_tokens == 2048 + 500
    later = usage_of(server, model=model, system=system, messages=conversation(30, 4 + gap))
    if gap <= CACHE_LOOKBACK_BLOCKS:  # found: the conversation up to block 4 is read
        assert later.cache_read_input_tokens == 2048 + 500
    else:  # beyond the lookback: only the system prompt's own entry is read
        assert later.cache_read_input_tokens == 2048
    written = 2048 + (5 + gap) * 100 - later.cache_read_input_tokens
    assert later.cache_creation_input_tokens == written


def test_more_than_four_breakpoints_is_refused(server: FakeAnthropic) -> None:
    content = [marked(words(10, f"m{i}")) for i in range(MAX_CACHE_BREAKPOINTS)]
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}]}
    assert usage_of(server, **body).cache_read_input_tokens == 0  # four: fine
    server.enqueue("unused")
    with pytest.raises(anthropic.BadRequestError, match="A maximum of 4 blocks"):
        create(client(server), **body, system=[marked("one more")])
    assert server.pending == 1  # refused before the model runs: the reply was not used


def test_tool_choice_changes_invalidate_only_the_cached_messages(server: FakeAnthropic) -> None:
    tools = [{"name": "f", "description": words(10), "input_schema": {"type": "object"}}]
    system = [marked(words(2100))]
    messages = conversation(3, 2)
    body = {"model": "claude-sonnet-4-6", "system": system, "messages": messages, "tools": tools}
    usage_of(server, **body)
    same = usage_of(server, **body)
    assert same.cache_read_input_tokens == 10 + 2100 + 300  # a name shorter than 4 counts 0
    changed = usage_of(server, **body, tool_choice={"type": "none"})
    assert changed.cache_read_input_tokens == 10 + 2100  # tools and system still read


def test_a_prompt_over_the_model_window_is_refused(server: FakeAnthropic) -> None:
    server.context_windows["claude-haiku-4-5"] = 1000
    server.enqueue("the one reply")
    over = conversation(10, None)
    over[0]["content"].append({"type": "text", "text": "abcd"})
    with pytest.raises(anthropic.BadRequestError, match=r"prompt is too long: 1001 tokens > 1000"):
        create(client(server), model="claude-haiku-4-5-20251001", messages=over)
    # The refused request used no scripted reply; a prompt of the window's size is fine.
    fits = create(client(server), model="claude-haiku-4-5", messages=conversation(10, None))
    assert fits.content[0].text == "the one reply"


COMPACT = {"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 50_000}}


def beta_create(server: FakeAnthropic, **kw: Any) -> Any:
    params = {
        "model": "claude-opus-4-8",
        "max_tokens": 100,
        "betas": [COMPACTION_BETA],
        "context_management": {"edits": [COMPACT]},
        **kw,
    }
    with client(server).beta.messages.stream(**params) as stream:
        return stream.get_final_message()


def test_server_compaction_past_the_trigger(server: FakeAnthropic) -> None:
    system = [marked(words(5000))]
    small = [{"role": "user", "content": words(40_000)}]
    server.enqueue("under the trigger", "compacted, then answered", "from the summary")
    assert beta_create(server, system=system, messages=small).content[0].type == "text"
    big = [{"role": "user", "content": words(45_000)}]  # 50,000 with the system prompt
    server.compaction_summary = lambda body: "The user sent a long text."
    answer = beta_create(server, system=system, messages=big)
    compaction, text_ = answer.content
    assert compaction.type == "compaction" and compaction.content == "The user sent a long text."
    assert compaction.encrypted_content and text_.text == "compacted, then answered"
    kinds = [i.type for i in answer.usage.iterations]
    assert kinds == ["compaction", "message"]
    assert (
        answer.usage.iterations[0].input_tokens + answer.usage.iterations[0].cache_read_input_tokens
        == 50_000
    )
    # The next request is counted from the compaction block on.
    block = {
        "type": "compaction",
        "content": compaction.content,
        "encrypted_content": compaction.encrypted_content,
    }
    after = [
        *big,
        {"role": "assistant", "content": [block, {"type": "text", "text": text_.text}]},
        {"role": "user", "content": "go on"},
    ]
    following = beta_create(server, system=system, messages=after)
    u = following.usage
    counted = u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens
    assert counted == 5000 + prompt_tokens({"messages": after[1:]})
    assert following.content[0].type == "text"


def test_a_changed_compaction_block_is_refused(server: FakeAnthropic) -> None:
    server.enqueue("compacted")
    first = beta_create(server, messages=[{"role": "user", "content": words(50_000)}])
    block = first.content[0].to_dict()
    assert block["type"] == "compaction"
    for changed in (
        {**block, "content": "edited"},
        {k: v for k, v in block.items() if k != "encrypted_content"},
    ):
        with pytest.raises(anthropic.BadRequestError, match="exactly as the API returned it"):
            beta_create(
                server,
                messages=[
                    {"role": "assistant", "content": [changed]},
                    {"role": "user", "content": "go"},
                ],
            )
    server.enqueue("fine")
    kept = beta_create(
        server,
        messages=[{"role": "assistant", "content": [block]}, {"role": "user", "content": "go"}],
    )
    assert kept.content[0].text == "fine"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"betas": []}, "requires the beta header"),
        ({"model": "claude-haiku-4-5"}, "not supported on claude-haiku-4-5"),
        (
            {
                "context_management": {
                    "edits": [
                        {
                            **COMPACT,
                            "trigger": {
                                "type": "input_tokens",
                                "value": MIN_COMPACTION_TRIGGER - 1,
                            },
                        }
                    ]
                }
            },
            "must be at least 50000",
        ),
    ],
)
def test_compaction_edits_the_api_refuses(
    server: FakeAnthropic, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError, match=message):
        beta_create(server, messages=MESSAGES, **change)
