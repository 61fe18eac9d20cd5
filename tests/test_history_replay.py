"""One replay of a Messages API history, for the panel and `%agent history`."""

from __future__ import annotations

from nbagent.jupyter.panel.history import SeenMessages, history_widgets
from nbagent.render.history import Prompt, history_text, message_items, replay
from nbagent.render.transcript import Transcript

PNG = "iVBORw0KGgo="

HISTORY = [
    {"role": "user", "content": "say hello with python"},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "I will print it.", "signature": "sig"},
            {"type": "text", "text": "Running it."},
            {
                "type": "tool_use",
                "id": "t1",
                "name": "run_python",
                "input": {"code": "print('hello')\nprint('again')"},
            },
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "t1",
                "content": [
                    {"type": "text", "text": "[stdout]\nhello\nagain"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                ],
            }
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "It printed hello."},
            {"type": "tool_use", "id": "t2", "name": "read_file", "input": {"path": "x"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "t2",
                "content": "No such file",
                "is_error": True,
            },
            {"type": "text", "text": "never mind"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        ],
    },
    {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t3", "name": "list_variables", "input": {}}],
    },
]


def test_replay_gives_prompts_and_one_transcript_per_assistant_run():
    entries = replay(HISTORY)
    kinds = [type(e).__name__ for e in entries]
    assert kinds == ["Prompt", "Transcript", "Prompt", "Prompt", "Transcript"]
    assert entries[0] == Prompt("say hello with python")
    assert entries[2] == Prompt("never mind")
    assert entries[3] == Prompt("[image]")

    run = entries[1]
    assert isinstance(run, Transcript)
    assert [b.kind for b in run.blocks] == ["thinking", "text", "tool", "text", "tool"]
    thinking, text, python, after, read = run.blocks
    assert thinking.text == "I will print it." and thinking.done
    assert text.text == "Running it." and text.done and after.text == "It printed hello."
    # The summary skips run_python's section label and counts the rest.
    assert python.name == "run_python" and python.done and not python.is_error
    assert python.summary == "hello (+1 lines) [1 image]"
    assert python.text == "code=print('hello')⏎print('again')"
    assert read.is_error and read.summary == "No such file"


def test_a_tool_call_without_its_result_stays_open():
    [*_, last] = replay(HISTORY)
    assert isinstance(last, Transcript)
    [call] = last.blocks
    assert call.name == "list_variables" and not call.done and call.summary == ""


def test_history_text_reads_like_the_cell_output():
    text = history_text(HISTORY)
    assert text.startswith("You: say hello with python\n\nAgent:\n")
    assert "  | I will print it." in text
    assert "[tool] run_python(code=print('hello')⏎print('again')) -> ok: hello (+1 lines)" in text
    assert "[tool] read_file(path=x) -> error: No such file" in text
    assert "You: never mind\n\nYou: [image]" in text
    assert "[tool] list_variables() -> running" in text
    assert "I will print it." not in history_text(HISTORY, show_thinking=False)
    assert history_text([]) == ""


def test_the_panel_shows_the_history_through_the_same_replay():
    html = "\n".join(w.value for w in history_widgets(message_items(HISTORY)))
    assert "say hello with python" in html
    assert "⚙ <b>run_python</b>" in html and "hello (+1 lines) [1 image]" in html
    assert "<details" in html and "I will print it." in html


def test_the_panel_shows_only_what_is_new_since_it_last_looked():
    messages = [HISTORY[0], HISTORY[1], {"role": "user", "content": [HISTORY[2]["content"][0]]}]
    seen = SeenMessages()
    assert [b["type"] for _, b in seen.new_items(messages)] == [
        "text",
        "thinking",
        "text",
        "tool_use",
        "tool_result",
    ]
    seen.mark(messages)
    assert seen.new_items(messages) == []
    # The user's next words join the last message; then the answer comes.
    messages[-1]["content"].append({"type": "text", "text": "and?"})
    messages.append({"role": "assistant", "content": [{"type": "text", "text": "Done."}]})
    assert seen.new_items(messages) == [
        ("user", {"type": "text", "text": "and?"}),
        ("assistant", {"type": "text", "text": "Done."}),
    ]
    seen.mark(messages)
    # Another list, or a shorter one, is a new conversation (a reset).
    assert seen.is_new_conversation(list(messages))
    assert not seen.is_new_conversation(messages)
    del messages[1:]
    assert seen.is_new_conversation(messages)
