"""The documented examples run as pasted, against the fake Messages API."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.fake_anthropic import FakeAnthropic, env_for, reply, text, tool_use
from tests.helpers import result_text, tool_results

ROOT = Path(__file__).resolve().parents[1]
PYTHON_API = ROOT / "docs" / "examples" / "python_api.py"


def run_example(path: Path, server: FakeAnthropic, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(env_for(server))
    return subprocess.run(
        [sys.executable, str(path)],
        cwd=cwd,  # no .env or system_prompt.txt of the project's own
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_python_api_example_runs_as_pasted(tmp_path: Path) -> None:
    with FakeAnthropic() as server:
        server.enqueue(
            reply(tool_use("lookup", {"sku": "SKU-42"})),
            "SKU-42 is a blue mug.",
            reply(text("Checking."), tool_use("lookup", {"sku": "SKU-43"})),
            "SKU-43 is a red teapot.",
        )
        done = run_example(PYTHON_API, server, tmp_path)
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert "SKU-42 is a blue mug." in out
        assert "end_turn ['lookup']" in out
        assert "Checking.\n[calling lookup {'sku': 'SKU-43'}]" in out
        assert "[lookup -> Red teapot, 1 l, 30 EUR]" in out
        assert "SKU-43 is a red teapot." in out and "(end_turn)" in out
        # The tool ran for real: its results went back to the model.
        second, fourth = server.requests[1]["body"], server.requests[3]["body"]
        assert result_text(tool_results(second["messages"][-1])[0]) == "Blue mug, 350 ml, 12 EUR"
        assert "Red teapot" in result_text(tool_results(fourth["messages"][-1])[0])
        assert [t["name"] for t in fourth["tools"]] == ["lookup"]


def test_readme_shows_the_python_api_example() -> None:
    """The README's Python API snippet is the example file, so the tested code is the
    code users paste."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python API", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    assert block.group(1).strip() == PYTHON_API.read_text().strip()
