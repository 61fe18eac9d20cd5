"""Context that never dead-ends (issue 10): measuring, the policy, client and server compaction.

Unit tests of `nbagent.context` and its request parameters, then sessions against the
fake Messages API: a compaction before the window fills (client side), the API's
compaction blocks kept verbatim (server side), `prompt is too long` recovered from with
one compaction and one retry, and `compact_now`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import anthropic
import pytest

import nbagent.context.server_compaction as server_compaction
from nbagent import Agent, tool
from nbagent.context import (
    ContextMeter,
    SessionContext,
    compact_now,
    context_policy,
    context_report,
    is_prompt_too_long,
    meter_of,
)
from nbagent.context.client_compaction import (
    SUMMARY_HEADER,
    SUMMARY_PROMPT,
    prune,
    split_index,
    summary_request,
    with_summary,
)
from nbagent.context.estimate import IMAGE_TOKENS, block_tokens
from nbagent.events import ErrorEvent, Notice, TurnEnd
from nbagent.history import block_to_param, request_messages, since_last_compaction
from nbagent.models import model_info
from tests.fake_anthropic import (
    COMPACTION_BETA,
    FakeAnthropic,
    error,
    prompt_tokens,
    reply,
    text,
    tool_use,
)
from tests.helpers import assert_valid_history, result_text, tool_results

pytestmark = pytest.mark.usefixtures("in_tmp")

ROW = "3.14159 2.71828 1.41421 "  # 24 characters: 6 tokens


@tool(read_only=True)
def load_rows(n: int) -> str:
    """Load a block of rows.

    Args:
        n: which block
    """
    return f"rows {n}: " + ROW * 150  # about 900 tokens


def small_window(monkeypatch: pytest.MonkeyPatch, window: int) -> None:
    """nbagent sees `window` as every model's context window (the fake is set apart)."""
    real = server_compaction.model_info
    monkeypatch.setattr(
        server_compaction,
        "model_info",
        lambda model: dataclasses.replace(real(model), context_window=window),
    )


def last_user_texts(body: dict[str, Any]) -> list[str]:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return [content]
    return [b.get("text", "") for b in content if b.get("type") == "text"]


def is_summary_request(body: dict[str, Any]) -> bool:
    return SUMMARY_PROMPT in last_user_texts(body)


def analyst(
    calls: int = 2, summary: str = "Rows were loaded; the mean is 2.42.", answer_repeats: int = 1
):
    """A responder playing a model: tool calls for a prompt, an answer for results, and
    a summary when asked for one."""

    def respond(body: dict[str, Any]) -> Any:
        if is_summary_request(body):
            return reply(text(summary))
        last = body["messages"][-1]
        content = last["content"] if isinstance(last["content"], list) else []
        if any(b.get("type") == "tool_result" for b in content):
            return reply(text("The rows look fine; the mean is 2.42. " * answer_repeats))
        return reply(*[tool_use("load_rows", {"n": i}) for i in range(calls)])

    return respond


def bodies(server: FakeAnthropic) -> list[dict[str, Any]]:
    return [r["body"] for r in server.requests if r["path"] == "/v1/messages"]


# --------------------------------------------------------------------------- measuring


def test_block_tokens_count_text_at_four_characters_and_images_at_a_fixed_cost():
    assert block_tokens({"type": "text", "text": "x" * 400}) == 100
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "A" * 10**6},
    }
    assert block_tokens(image) == IMAGE_TOKENS
    result = {
        "type": "tool_result",
        "tool_use_id": "t",
        "content": [image, {"type": "text", "text": "y" * 40}],
    }
    assert block_tokens(result) == IMAGE_TOKENS + 10


def test_the_meter_adds_the_new_blocks_to_the_last_measured_request():
    history: list[dict[str, Any]] = [{"role": "user", "content": "hello " * 100}]
    params = {"system": "s" * 400, "tools": [], "messages": history}
    meter = ContextMeter()
    assert meter.measure(history, params).measured is None  # nothing measured yet: estimated
    meter.expect(history, params)
    meter.settle(5_000)  # what the API counted for that request
    history.append({"role": "assistant", "content": [{"type": "text", "text": "a" * 800}]})
    history.append({"role": "user", "content": [{"type": "text", "text": "b" * 400}]})
    measured = meter.measure(history, params)
    assert (measured.measured, measured.added, measured.tokens) == (5_000, 300, 5_300)
    # A rewritten history (a compaction, a reset) is estimated whole again.
    history[:] = [{"role": "user", "content": "short"}]
    assert meter.measure(history, params).measured is None


def test_the_meter_starts_over_after_a_server_compaction():
    history: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
    meter = ContextMeter()
    meter.expect(history, {"messages": history})
    meter.settle(90_000, compacted=True)
    assert meter.measure(history, {"messages": history}).measured is None


def test_policy_by_model_and_setting():
    opus, haiku = "claude-opus-4-8", "claude-haiku-4-5"
    assert model_info(opus).server_compaction and not model_info(haiku).server_compaction
    assert context_policy(opus, "auto", 0.8).mode == "server"
    assert context_policy(opus, "auto", 0.8).trigger == 800_000
    assert context_policy(haiku, "auto", 0.8).mode == "client"
    assert context_policy(haiku, "auto", 0.8).trigger == 160_000
    assert context_policy(opus, "client", 0.8).mode == "client"
    assert context_policy(opus, "off", 0.8).mode == "off"
    forced = context_policy(haiku, "server", 0.8)
    assert forced.mode == "client" and forced.notice and "not available" in forced.notice
    # The API refuses a trigger under 50,000 tokens.
    assert context_policy(opus, "auto", 0.01).trigger == 50_000


def test_server_mode_requests_carry_the_beta_compaction_edit(fake_api):
    fake_api.enqueue("Hello.")
    Agent(model="claude-opus-4-8", compact_at=0.5).run("hi")
    request = fake_api.requests[-1]
    assert COMPACTION_BETA in request["headers"]["anthropic-beta"]
    assert request["body"]["context_management"] == {
        "edits": [
            {"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 500_000}}
        ]
    }


@pytest.mark.parametrize(
    ("model", "compaction"),
    [("claude-haiku-4-5", "auto"), ("claude-opus-4-8", "client"), ("claude-opus-4-8", "off")],
)
def test_other_modes_send_no_context_management(fake_api, model, compaction):
    fake_api.enqueue("Hello.")
    Agent(model=model, compaction=compaction).run("hi")
    request = fake_api.requests[-1]
    assert "context_management" not in request["body"]
    assert "anthropic-beta" not in request["headers"]


def test_context_editing_adds_the_clear_tool_uses_edit(fake_api):
    fake_api.enqueue("Hello.")
    Agent(model="claude-haiku-4-5", context_editing=True).run("hi")
    request = fake_api.requests[-1]
    assert request["body"]["context_management"] == {
        "edits": [{"type": "clear_tool_uses_20250919"}]
    }
    assert "context-management-2025-06-27" in request["headers"]["anthropic-beta"]


def test_context_report_by_kind():
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
    }
    history = [
        {"role": "user", "content": "q" * 400},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "r" * 800}, image],
                }
            ],
        },
    ]
    report = context_report(
        history=history, system="s" * 4000, tools=[], model="claude-haiku-4-5", meter=None
    )
    assert (report.system_and_tools, report.tool_results, report.image_count) == (1000, 200, 1)
    assert report.images == IMAGE_TOKENS and report.conversation == 100
    assert report.tokens == 1000 + 200 + IMAGE_TOKENS + 100
    assert (report.window, report.mode, report.trigger) == (200_000, "client", 160_000)
    shown = str(report)
    assert "of 200,000 tokens" in shown and "compacts on the client at 160,000" in shown


# --------------------------------------------------------------------------- compaction pieces


def exchange(i: int, size: int = 4000) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": [{"type": "text", "text": f"prompt {i}"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": f"t{i}", "name": "f", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "o" * size}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": f"answer {i}"}]},
    ]


def test_the_split_never_separates_a_tool_call_from_its_result():
    history = [m for i in range(6) for m in exchange(i)]
    for keep in (0, 500, 1200, 3000, 100_000):
        split = split_index(history, 0, keep)
        recent = history[split:]
        assert_valid_history(with_summary("the summary", recent))
    # The last exchange is always kept, even over the budget.
    assert split_index(history, 0, 0) == len(history) - 1


def test_prune_replaces_large_old_outputs_and_images_only_before_the_split():
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
    }
    history = [m for i in range(3) for m in exchange(i)]
    history[0]["content"].append(image)
    pruned, replaced = prune(history, 8)
    assert replaced == 3  # two large outputs and one image
    assert "removed to save context" in pruned[2]["content"][0]["content"]
    assert pruned[0]["content"][1]["type"] == "text"
    assert pruned[10] is history[10]  # after the split: shared, untouched
    assert history[2]["content"][0]["content"] == "o" * 4000  # the original is not modified
    assert_valid_history(pruned)


def test_the_summary_request_is_the_next_request_plus_a_question():
    history = [m for i in range(2) for m in exchange(i)] + [
        {"role": "user", "content": [{"type": "text", "text": "next"}]}
    ]
    params = {
        "model": "m",
        "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
        "messages": request_messages(history, True),
        "tool_choice": {"type": "any"},
        "context_management": {"edits": []},
        "betas": ["x"],
    }
    request = summary_request(params)
    # Every message but the last is the very same: the cached prefix is read.
    assert request["messages"][:-1] == params["messages"][:-1]
    last = request["messages"][-1]["content"]
    assert last[:-1] == params["messages"][-1]["content"]
    assert last[-1] == {"type": "text", "text": SUMMARY_PROMPT}
    assert "tool_choice" not in request and "context_management" not in request
    assert "betas" not in request and request["system"] == params["system"]


def test_block_to_param_keeps_compaction_blocks_exactly():
    from anthropic.types.beta import BetaMessage

    message = BetaMessage.model_validate(
        {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "model": "claude-opus-4-8",
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
            "content": [
                {"type": "compaction", "content": "sum", "encrypted_content": "opaque=="},
                {"type": "compaction", "content": None},  # a failed compaction: a no-op
                {"type": "text", "text": "after"},
            ],
        }
    )
    blocks = [block_to_param(b) for b in message.content]
    assert blocks[0] == {"type": "compaction", "content": "sum", "encrypted_content": "opaque=="}
    assert blocks[1] == {"type": "compaction", "content": None}
    history = [
        {"role": "user", "content": "old"},
        {"role": "assistant", "content": blocks},
        {"role": "user", "content": "new"},
    ]
    assert since_last_compaction(history) == [
        {"role": "assistant", "content": blocks[1:]},
        {"role": "user", "content": "new"},
    ]


# --------------------------------------------------------------------------- sessions


def run_turn(agent: Agent, prompt: str) -> tuple[str, list[Notice]]:
    """One turn through the event stream: its stop reason and its notices."""
    events = list(agent.stream(prompt))
    end = events[-1]
    assert isinstance(end, TurnEnd)
    return end.stop_reason, [e for e in events if isinstance(e, Notice)]


def test_client_compaction_before_the_window_fills(fake_api, monkeypatch):
    small_window(monkeypatch, 20_000)
    fake_api.context_windows["claude-haiku-4-5"] = 20_000
    # Long answers: placeholders for old outputs are not enough, a summary is needed.
    fake_api.responder = analyst(answer_repeats=150)
    agent = Agent(model="claude-haiku-4-5", tools=[load_rows], max_retries=0)
    notices: list[str] = []
    for turn in range(12):
        stop, said = run_turn(agent, f"turn {turn}: load more rows")
        assert stop == "end_turn"
        notices += [n.text for n in said]
    sent = bodies(fake_api)
    assert max(prompt_tokens(b) for b in sent) <= 20_000  # no request was refused
    assert any(is_summary_request(b) for b in sent)
    assert any(n.startswith("Compacted the conversation") for n in notices)
    assert any(SUMMARY_HEADER in json.dumps(b["messages"][0]) for b in sent)
    assert_valid_history(agent.messages)
    for body in sent:
        assert_valid_history(body["messages"])


def test_summary_request_reads_the_cached_conversation(fake_api, monkeypatch):
    fake_api.responder = analyst(calls=1)
    agent = Agent(model="claude-haiku-4-5", tools=[load_rows], system="You analyse data. " * 1000)
    for turn in range(3):
        agent.run(f"turn {turn}")
    before = fake_api.requests[-1]["body"]
    session = agent.session  # type: ignore[attr-defined]
    turn, _ = session._new_turn(None, None)
    outcome = compact_now(turn.context)
    assert outcome is not None and outcome.summarised > 0 and outcome.usage is not None
    summary = fake_api.requests[-1]["body"]
    assert is_summary_request(summary)
    # Same system, tools and conversation as the last request: all of it read from cache.
    assert summary["system"] == before["system"] and summary["tools"] == before["tools"]
    assert outcome.usage.cache_read_input_tokens >= prompt_tokens(before) - 50
    assert agent.messages[0]["content"][0]["text"].startswith(SUMMARY_HEADER)
    assert_valid_history(agent.messages)
    # The next request keeps the tools and system cache.
    agent.run("and now?")
    assert fake_api.requests[-1]["body"]["system"] == before["system"]


def test_prompt_too_long_compacts_and_retries_once(fake_api, monkeypatch):
    # nbagent believes the window is large; the API's is small: a request is refused.
    small_window(monkeypatch, 200_000)
    fake_api.context_windows["claude-haiku-4-5"] = 12_000
    fake_api.responder = analyst(calls=3)
    agent = Agent(model="claude-haiku-4-5", tools=[load_rows], max_retries=0)
    notices: list[str] = []
    for turn in range(8):
        stop, said = run_turn(agent, f"turn {turn}")
        assert stop == "end_turn"
        notices += [n.text for n in said]
    sent = bodies(fake_api)
    refused = [i for i, b in enumerate(sent) if prompt_tokens(b) > 12_000]
    assert refused, "the scenario must reach the API's limit"
    assert any("too long for the model (" in n for n in notices)
    for i in refused:
        # The refused request is compacted and sent once more, and then it fits.
        retry = next(b for b in sent[i + 1 :] if not is_summary_request(b))
        assert prompt_tokens(retry) <= 12_000
    assert_valid_history(agent.messages)


def test_prompt_too_long_is_retried_only_once(fake_api):
    fake_api.context_windows["claude-haiku-4-5"] = 1_000
    agent = Agent(model="claude-haiku-4-5", tools=[load_rows], max_retries=0)
    events = list(agent.stream("x" * 20_000))  # one prompt bigger than the window
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert errors and "prompt is too long" in errors[0].message
    assert isinstance(events[-1], TurnEnd) and events[-1].stop_reason == "error"
    assert len(bodies(fake_api)) == 1  # nothing could be compacted: no retry loop


def test_compaction_off_leaves_the_refusal_to_the_user(fake_api, monkeypatch):
    fake_api.context_windows["claude-haiku-4-5"] = 3_000
    fake_api.responder = analyst(calls=6)
    agent = Agent(model="claude-haiku-4-5", tools=[load_rows], compaction="off", max_retries=0)
    stop, _ = run_turn(agent, "load")
    assert stop == "error"
    assert all(not is_summary_request(b) for b in bodies(fake_api))
    assert_valid_history(agent.messages)


def test_is_prompt_too_long():
    request = __import__("httpx2").Request("POST", "http://x/v1/messages")
    response = __import__("httpx2").Response(400, request=request)
    too_long = anthropic.BadRequestError(
        "prompt is too long: 208310 tokens > 200000 maximum", response=response, body=None
    )
    other = anthropic.BadRequestError("max_tokens: too large", response=response, body=None)
    assert is_prompt_too_long(too_long) and not is_prompt_too_long(other)
    assert not is_prompt_too_long(ValueError("prompt is too long"))


def test_server_compaction_blocks_round_trip_verbatim(fake_api, monkeypatch):
    small_window(monkeypatch, 80_000)  # trigger: 64,000 tokens
    fake_api.context_windows["claude-opus-4-8"] = 80_000
    fake_api.responder = analyst(calls=8)
    agent = Agent(model="claude-opus-4-8", tools=[load_rows], max_retries=0)
    for turn in range(12):
        assert agent.run(f"turn {turn}").stop_reason == "end_turn"
    assert fake_api.compactions, "the API compacted"
    issued = fake_api.compactions[0]
    kept = [
        b
        for m in agent.messages
        if m["role"] == "assistant"
        for b in m["content"]
        if b.get("type") == "compaction"
    ]
    assert kept[0] == issued  # in the history exactly as the API sent it
    later = [
        b
        for b in bodies(fake_api)
        if any(
            b2.get("type") == "compaction"
            for m in b["messages"]
            if isinstance(m["content"], list)
            for b2 in m["content"]
        )
    ]
    assert later, "later requests carry the block"
    first = later[0]["messages"][0]["content"][0]
    assert {k: v for k, v in first.items() if k != "cache_control"} == issued
    assert all(not is_summary_request(b) for b in bodies(fake_api)), "no client compaction"
    assert_valid_history(agent.messages)


def test_compact_now_with_nothing_to_compact(fake_api):
    fake_api.enqueue("Hello.")
    agent = Agent(model="claude-haiku-4-5")
    agent.run("hi")
    session = agent.session  # type: ignore[attr-defined]
    turn, _ = session._new_turn(None, None)
    assert isinstance(turn.context, SessionContext)
    assert compact_now(turn.context) is None
    assert meter_of(session) is turn.context.meter


def test_final_answer_is_asked_in_words_and_keeps_the_cache(fake_api):
    fake_api.enqueue(
        reply(tool_use("load_rows", {"n": 1})),
        reply(text("Here is what I have."), tool_use("load_rows", {"n": 2})),
    )
    agent = Agent(model="claude-haiku-4-5", tools=[load_rows], max_turns=1)
    result = agent.run("load rows")
    assert result.stop_reason == "max_turns"
    first, last = (r["body"] for r in fake_api.requests)
    assert "tool_choice" not in last and last["tools"] == first["tools"]
    asked = last["messages"][-1]["content"][-1]
    assert "Do not call any more tools" in asked["text"]
    # The call the model still made is answered, never run.
    answer = tool_results(agent.messages[-1])
    assert answer and result_text(answer[0]).startswith("not run: turn limit reached")
    assert_valid_history(agent.messages)


def test_recovery_then_an_error_leaves_a_valid_history(fake_api, monkeypatch):
    small_window(monkeypatch, 200_000)
    fake_api.context_windows["claude-haiku-4-5"] = 6_000
    fake_api.responder = analyst(calls=4)
    agent = Agent(model="claude-haiku-4-5", tools=[load_rows], max_retries=0)
    agent.run("first")
    fake_api.responder = None
    fake_api.enqueue(error(500, "boom"))
    stop, _ = run_turn(agent, "second")
    assert stop == "error"
    assert_valid_history(agent.messages)


# ------------------------------------------------- endpoints without context management


def test_an_endpoint_that_refuses_context_management_gets_client_compaction(fake_api):
    # A proxy or local server that knows the Messages API but not the beta parameter.
    def strict(body: dict[str, Any]) -> Any:
        if "context_management" in body:
            return error(400, "context_management: Extra inputs are not permitted")
        return reply(text("Fine."))

    fake_api.responder = strict
    agent = Agent(model="claude-opus-4-8", tools=[load_rows], max_retries=0)
    stop, notices = run_turn(agent, "hello")
    assert stop == "end_turn" and agent.messages[-1]["content"][-1]["text"] == "Fine."
    said = [n.text for n in notices if "does not take server-side context management" in n.text]
    assert len(said) == 1 and fake_api.url in said[0] and "Extra inputs" in said[0]
    sent = bodies(fake_api)
    assert len(sent) == 2 and "context_management" in sent[0]
    assert "context_management" not in sent[1]
    assert COMPACTION_BETA not in fake_api.requests[-1]["headers"].get("anthropic-beta", "")
    # The next turns go without it at once, and say nothing more.
    stop, notices = run_turn(agent, "again")
    assert stop == "end_turn" and len(bodies(fake_api)) == 3
    assert "context_management" not in bodies(fake_api)[-1]
    assert not [n for n in notices if "context management" in n.text]
    assert agent.session.context_report().mode == "client"
    assert_valid_history(agent.messages)


def test_a_refusal_of_something_else_is_not_taken_for_one_of_context_management(fake_api):
    fake_api.responder = lambda body: error(400, "max_tokens: must be at most 64000")
    agent = Agent(model="claude-opus-4-8", max_retries=0)
    stop, _ = run_turn(agent, "hello")
    assert stop == "error" and len(bodies(fake_api)) == 1
    assert agent.session.context_refused_by == set()


def test_refuses_context_management_reads_anthropic_and_validation_errors():
    httpx = __import__("httpx2")
    request = httpx.Request("POST", "http://x/v1/messages")

    def refusal(status: int, body: Any, message: str) -> anthropic.APIStatusError:
        response = httpx.Response(status, request=request)
        kind = anthropic.BadRequestError if status == 400 else anthropic.UnprocessableEntityError
        return kind(message, response=response, body=body)

    # A FastAPI-style server's 422, which names the parameter only in its body.
    detail = {"detail": [{"type": "extra_forbidden", "loc": ["body", "context_management"]}]}
    assert server_compaction.refuses_context_management(refusal(422, detail, "Error code: 422"))
    assert server_compaction.refuses_context_management(
        refusal(
            400, None, "Unexpected value(s) `compact-2026-01-12` for the `anthropic-beta` header"
        )
    )
    assert not server_compaction.refuses_context_management(
        refusal(400, None, "prompt is too long: 300000 tokens > 200000 maximum")
    )
    assert not server_compaction.refuses_context_management(ValueError("context_management"))


def test_a_summary_request_over_the_budget_is_not_sent(fake_api):
    fake_api.responder = analyst(calls=2)
    agent = Agent(model="claude-haiku-4-5", tools=[load_rows], max_retries=0)
    for turn in range(3):
        assert run_turn(agent, f"turn {turn}: load rows")[0] == "end_turn"
    sent = len(bodies(fake_api))
    spent = agent.usage.cost_usd
    assert spent
    agent.configure(session_budget_usd=spent + 0.000001)  # nothing more may be spent
    outcome = agent.session.compact()
    assert len(bodies(fake_api)) == sent, "the summary request was not sent"
    assert outcome is not None and outcome.summarised == 0 and outcome.placeholders > 0
    said = [e.text for e in outcome.events if isinstance(e, Notice)]
    assert any("no summary request: the session budget" in n for n in said)
    assert agent.usage.cost_usd == spent
    assert_valid_history(agent.messages)

    # Within the budget the same compaction summarises.
    agent.configure(session_budget_usd=None)
    fake_api.responder = analyst(calls=2)
    assert run_turn(agent, "turn 4: load rows")[0] == "end_turn"
    outcome = agent.session.compact()
    assert outcome is not None and outcome.summarised > 0
    assert is_summary_request(bodies(fake_api)[-1])


def test_a_turn_budget_also_holds_back_the_compaction_summary(fake_api, monkeypatch):
    small_window(monkeypatch, 20_000)  # compaction at 16,000 tokens
    fake_api.context_windows["claude-haiku-4-5"] = 20_000
    agent = Agent(model="claude-haiku-4-5", tools=[load_rows], max_retries=0)
    for i in range(4):  # plain text, about 10,000 tokens: only a summary shortens it
        agent.session.history += [
            {"role": "user", "content": f"question {i}: " + ROW * 350},
            {"role": "assistant", "content": [{"type": "text", "text": "answer " + ROW * 60}]},
        ]
    # The turn's first response costs $0.517 (Haiku 4.5: $1 in, $5 out per million) and
    # says the context is near the trigger: the next request needs a compaction first.
    first = {"input_tokens": 17_000, "output_tokens": 100_000}

    def respond(body: dict[str, Any]) -> Any:
        if is_summary_request(body):
            return reply(text("A summary."))
        if len(bodies(fake_api)) == 1:
            return reply(tool_use("load_rows", {"n": 1}), usage=first)
        return reply(text("Done."))

    fake_api.responder = respond
    events = list(agent.stream("one more", turn_budget_usd=0.5171))  # $0.517 spent by then
    said = [e.text for e in events if isinstance(e, Notice)]
    # The summary would pass the turn's budget with what the turn spent already.
    assert any("no summary request: the turn budget" in n for n in said), said
    assert not any(is_summary_request(b) for b in bodies(fake_api))
    assert_valid_history(agent.messages)
