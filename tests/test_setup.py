"""The README's set-up command works on a fresh clone in a clean environment.

`bash scripts/quickstart.sh` runs in a `git clone` of the committed HEAD, as the current
user, with no virtualenv active and a PATH without `python` (as on a fresh Debian). It
must make its own .venv, build the JupyterLab extension and start JupyterLab on the
quickstart notebook; the notebook then runs top to bottom in that .venv against the fake
Messages API. The user's pip and yarn caches are reused, so this takes minutes, not tens.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tests.fake_anthropic import FakeAnthropic, reply, text, tool_use
from tests.helpers import tool_results
from tests.test_quickstart import PLOT_CODE

REPO = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT = 1500  # seconds: a first run with empty pip and yarn caches downloads a lot
# Where packages come from on this machine (proxies, certificates, indexes): not part of
# the Python environment under test, and needed to reach the same registries.
NETWORK_VARIABLES = re.compile(
    r"(?i)^(https?_proxy|no_proxy|all_proxy|ssl_cert_(file|dir)|requests_ca_bundle"
    r"|node_extra_ca_certs|pip_(index_url|extra_index_url|find_links|cert|constraint|trusted_host)"
    r"|npm_config_registry|yarn_npm_registry_server)$"
)

# Runs in the clone's .venv: execute the notebook there with nbclient (which comes with
# JupyterLab), so the kernel is the .venv's Python, not the one running pytest.
EXECUTE = """
import sys
from pathlib import Path
import nbformat
from nbclient import NotebookClient
path, out = Path(sys.argv[1]), sys.argv[2]
nb = nbformat.read(path, as_version=4)
# Which Python and which nbagent the kernel ran: the test checks they are the clone's.
where = "import sys, nbagent; print(sys.executable); print(nbagent.__file__)"
nb.cells.append(nbformat.v4.new_code_cell(where))
client = NotebookClient(
    nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
)
client.execute()
nbformat.write(nb, out)
"""


def _clean_path(tmp: Path) -> str:
    """A bin dir with what a fresh Debian has in /usr/bin and /bin, minus `python`,
    plus git and Node.js from wherever this machine has them."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for system_dir in ("/usr/bin", "/bin"):
        for entry in Path(system_dir).iterdir():
            name = entry.name
            if name == "python" or name.startswith("python2") or name.startswith("pip"):
                continue
            if not (bin_dir / name).exists():
                (bin_dir / name).symlink_to(entry)
    for tool in ("python3", "git", "node", "npm"):
        found = shutil.which(tool, path="/usr/bin:/bin") or shutil.which(tool)
        assert found, f"{tool} is needed for the set-up test"
        link = bin_dir / tool
        if not link.exists():
            link.symlink_to(found)
    path = str(bin_dir)
    assert shutil.which("python", path=path) is None
    return path


def _clean_env(path: str) -> dict[str, str]:
    env = {
        "HOME": os.environ.get("HOME", str(Path.home())),  # the pip and yarn caches live here
        "PATH": path,
        "LANG": "C.UTF-8",
        "TERM": "dumb",
    }
    for name in ("USER", "LOGNAME", "TMPDIR"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update({k: v for k, v in os.environ.items() if NETWORK_VARIABLES.match(k)})
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except (urllib.error.URLError, OSError):
        return None


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    target = tmp_path / "nbagent"
    subprocess.run(["git", "clone", "-q", str(REPO), str(target)], check=True)
    return target


@pytest.fixture
def quickstart(clone: Path, tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    """Run `bash scripts/quickstart.sh` with a headless JupyterLab; yield its URL."""
    env = _clean_env(_clean_path(tmp_path))
    port = _free_port()
    log_path = tmp_path / "quickstart.log"
    lab_args = ["--no-browser", f"--port={port}", "--ServerApp.token=", "--ip=127.0.0.1"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            ["bash", "scripts/quickstart.sh", *lab_args],
            cwd=clone,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + INSTALL_TIMEOUT
        while _get(f"{url}/api/status") is None:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"quickstart.sh did not start JupyterLab:\n{log_path.read_text()[-6000:]}"
                )
            time.sleep(1)
        yield url, env, log_path
    finally:
        # quickstart.sh execs `jupyter lab`, so this PID is the server's.
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _cell_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        data = output.get("data", {})
        parts += [data.get("text/plain", ""), data.get("text/markdown", "")]
    return "".join(parts)


@pytest.mark.timeout(INSTALL_TIMEOUT + 300)
def test_readme_setup_command_on_a_fresh_clone(
    quickstart: tuple[str, dict[str, str], Path], clone: Path, tmp_path: Path
) -> None:
    url, env, log_path = quickstart
    log = log_path.read_text()
    assert "python3 -m venv .venv" in log  # made its own environment, and said so

    # The server answers, and it serves the extension to the page.
    assert json.loads(_get(f"{url}/api/status") or "{}").get("started")
    page = _get(f"{url}/lab/tree/quickstart.ipynb") or ""
    config = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S
    )
    assert config, page[:2000]
    served = [e["name"] for e in json.loads(config.group(1))["federated_extensions"]]
    assert "nbagent-labextension" in served
    listing = subprocess.run(
        [str(clone / ".venv/bin/jupyter"), "labextension", "list"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    listed = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    section = listed.split(str(clone / ".venv/share/jupyter/labextensions"), 1)
    assert len(section) == 2, listed
    entry = next(line for line in section[1].splitlines() if "nbagent-labextension" in line)
    assert "enabled" in entry and "OK" in entry, listed

    # The quickstart notebook runs in the clone's .venv, against the fake.
    with FakeAnthropic() as fake_api:
        fake_api.enqueue(
            reply(text("Let me look."), tool_use("inspect_variable", {"name": "sales"})),
            "624 rows, 7 columns; a few missing revenue values.",
            reply(tool_use("run_python", {"code": PLOT_CODE})),
            "- West grows steadily\n- a holiday bump\n- North is flat",
            "West grew fastest.",
        )
        notebook = clone / "notebooks" / "quickstart.ipynb"
        executed = tmp_path / "executed.ipynb"
        run_env = env | {"ANTHROPIC_BASE_URL": fake_api.url, "ANTHROPIC_API_KEY": "sk-ant-fake"}
        result = subprocess.run(
            [str(clone / ".venv/bin/python"), "-c", EXECUTE, str(notebook), str(executed)],
            cwd=clone / "notebooks",
            env=run_env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr[-6000:]
        requests = [r["body"] for r in fake_api.requests]

    cells = [c for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"]
    for cell in cells:
        assert cell.execution_count is not None, cell.source
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.source
    load, head, explore, plot, weekly, question, usage, chat, where = cells
    assert "%load_ext nbagent" in load.source
    assert "revenue" in _cell_text(head)  # pandas is installed
    assert "624 rows" in _cell_text(explore)
    assert any("image/png" in o.get("data", {}) for o in plot.outputs)  # matplotlib too
    assert "West" in _cell_text(weekly)
    assert "West grew fastest." in _cell_text(question)
    assert re.search(r"\$\d+\.\d\d", _cell_text(usage))  # a cost, whatever the wording
    assert any(
        "application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in chat.outputs
    )
    executable, package = _cell_text(where).split()
    assert Path(executable).parent == clone / ".venv" / "bin"
    assert Path(package).is_relative_to(clone / "src")

    assert len(requests) == 5
    plot_result = tool_results(requests[3]["messages"][-1])[0]["content"]
    assert any(block["type"] == "image" for block in plot_result)
