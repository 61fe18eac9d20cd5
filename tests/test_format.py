"""One formatting of usage, clipped text, tool arguments and sizes, on every surface."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from nbagent.cli.render import TerminalRenderer
from nbagent.events import TurnEnd, Usage
from nbagent.jupyter.panel.html import usage_html
from nbagent.render.format import clip, format_args, format_usage, human_size
from nbagent.render.transcript import Transcript

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "usage_format.json").read_text())


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda c: c["line"])
def test_usage_line_matches_the_shared_fixture(case):
    assert format_usage(Usage(**case["usage"])) == case["line"]


def test_cached_share_rounds_halves_up_as_the_frontend_does():
    # 1 of 8 input tokens read from the cache: 12.5 %, which Math.round makes 13.
    usage = Usage(input_tokens=7, cache_read_input_tokens=1, cost_usd=0.0)
    assert format_usage(usage) == "8 in (13% cached) · 0 out · $0.0000"


def test_input_total_counts_uncached_cache_writes_and_cache_reads():
    usage = Usage(input_tokens=10, cache_creation_input_tokens=1990, cache_read_input_tokens=18000)
    assert usage.input_total == 20_000
    assert usage.cached_share == pytest.approx(0.9)
    assert Usage().cached_share == 0.0
    assert usage.total_tokens == 20_000


def test_an_unknown_cost_makes_the_sum_unknown():
    known = Usage(input_tokens=1, cost_usd=0.25)
    unknown = Usage(input_tokens=2, cost_usd=None)
    assert (known + known).cost_usd == pytest.approx(0.5)
    assert (known + unknown).cost_usd is None
    assert (unknown + known).cost_usd is None
    assert (Usage() + unknown + known).input_tokens == 3
    assert format_usage(known + unknown).endswith("· cost unknown")


def test_every_surface_shows_the_same_usage_line():
    usage = Usage(input_tokens=10, output_tokens=5, cache_read_input_tokens=90, cost_usd=0.5)
    line = format_usage(usage)
    assert line == "100 in (90% cached) · 5 out · $0.5000"

    transcript = Transcript()
    transcript.add(usage)
    assert transcript.footer().startswith(line + " · ")

    out = io.StringIO()
    renderer = TerminalRenderer(Console(file=out, width=200, highlight=False))
    renderer.handle(usage)
    renderer.handle(TurnEnd("end_turn"))
    assert f"─ {line} · " in out.getvalue()

    assert line in usage_html(usage)


def test_clip_cuts_with_an_ellipsis_within_the_width():
    assert clip("short", 10) == "short"
    assert clip("abcdefghij", 10) == "abcdefghij"
    assert clip("abcdefghijk", 10) == "abcdefghi…"
    assert len(clip("x" * 500, 60)) == 60


def test_tool_arguments_on_one_line():
    args = {"path": "a.txt", "content": "line 1\nline 2", "n": 3, "opts": {"x": [1, 2]}}
    assert format_args(args) == 'path=a.txt content=line 1⏎line 2 n=3 opts={"x": [1, 2]}'
    assert format_args({"code": "y" * 100}, limit=20) == "code=" + "y" * 19 + "…"
    assert format_args({}) == ""


def test_human_size():
    assert human_size(None) == "?"
    assert human_size(0) == "0 B"
    assert human_size(1023) == "1023 B"
    assert human_size(1536) == "1.5 KB"
    assert human_size(5 * 1024**2) == "5.0 MB"
    assert human_size(3 * 1024**3) == "3.0 GB"
    assert human_size(2 * 1024**4) == "2048.0 GB"
