"""Bytes on the wire for a long streamed answer in a real kernel.

Runs `%%agent` in a real kernel (nbclient) against the fake server streaming a
~20,000-token answer, counts the iopub output messages' content bytes (display,
update_display, stream), and divides by the bytes of the cell's final outputs
(the transcript as saved in the notebook). Target: at most 3.

    python benchmarks/stream_display.py [--tokens 20000] [--tokens-per-second 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nbclient import NotebookClient  # noqa: E402
from nbformat.v4 import new_code_cell, new_notebook  # noqa: E402
from tests.fake_anthropic import FakeAnthropic, reply, text  # noqa: E402

OUTPUT_TYPES = {"display_data", "update_display_data", "stream", "execute_result", "clear_output"}


class CountingClient(NotebookClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.iopub_bytes = 0
        self.messages = 0

    def process_message(self, msg, cell, cell_index):
        if msg["msg_type"] in OUTPUT_TYPES and cell_index == 1:
            self.iopub_bytes += len(json.dumps(msg["content"]).encode())
            self.messages += 1
        return super().process_message(msg, cell, cell_index)


def answer_text(tokens: int) -> str:
    """Markdown of about `tokens` tokens (~4 characters each), paragraphs and a list."""
    words = []
    i = 0
    while len(" ".join(words)) < tokens * 4:
        i += 1
        words.append(f"word{i % 97}")
        if i % 60 == 0:
            words.append("\n\n")
        elif i % 23 == 0:
            words.append("\n- item")
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--tokens-per-second", type=float, default=2000)
    args = parser.parse_args()
    chunk_chars = 16  # ~4 tokens per SSE event
    delay = chunk_chars / 4 / args.tokens_per_second
    body = answer_text(args.tokens)
    with FakeAnthropic() as server, tempfile.TemporaryDirectory() as tmp:
        server.enqueue(reply(text(body, chunk=chunk_chars), delay=delay))
        os.environ["ANTHROPIC_BASE_URL"] = server.url
        os.environ["ANTHROPIC_API_KEY"] = "sk-ant-benchmark"
        os.environ.pop("MPLBACKEND", None)
        nb = new_notebook()
        nb.cells = [
            new_code_cell("%load_ext nbagent"),
            new_code_cell("%%agent\nWrite a long essay."),
        ]
        client = CountingClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp}}
        )
        start = time.perf_counter()
        client.execute()
        elapsed = time.perf_counter() - start
    final_bytes = len(json.dumps(nb.cells[1].outputs).encode())
    shown = "".join(o.get("data", {}).get("text/plain", "") for o in nb.cells[1].outputs)
    assert "word1" in shown, "the answer did not reach the cell output"
    print(
        f"answer: {len(body):,} characters (~{args.tokens:,} tokens), streamed at ~{args.tokens_per_second:,.0f} tokens/s"
    )
    print(
        f"run time: {elapsed:.1f} s; output messages: {client.messages}; final outputs: {len(nb.cells[1].outputs)}"
    )
    print(f"iopub output bytes: {client.iopub_bytes:,}")
    print(f"final transcript bytes: {final_bytes:,}")
    print(f"ratio: {client.iopub_bytes / final_bytes:.2f}  (target <= 3)")


if __name__ == "__main__":
    main()
