"""Shell and Python tools under attack: secrets, memory, stray processes, the sandbox.

Written as a hostile or careless model would act: each test runs the command such
a model would send and checks what came back and what was left behind. Most run
with the OS sandbox (bubblewrap) on and off; the test machine must have `bwrap`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbagent.redact import is_secret_name as _is_secret_name
from nbagent.tools.base import Tool, ToolError
from nbagent.tools.process import (
    Omission,
    ProcessResult,
    format_process_result,
    run_process,
    scrubbed_env,
)
from nbagent.tools.reaper import HeadTail
from nbagent.tools.shell import shell_tools
from nbagent.tools.workspace import Workspace

SECRETS = {
    "ANTHROPIC_API_KEY": "test-anthropic-kernelsecret0001",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-kernelsecret0002",
    "MY_PASSWORD": "correct-horse-kernelsecret0003",
    "DATABASE_URL": "postgres://analyst:kernelsecret0004@db.example/sales",
    "GITHUB_TOKEN": "ghp_kernelsecret0005abcdef",
}
SECRET_VALUES = ["kernelsecret000" + str(i) for i in range(1, 6)]

# Every ancestor's environment, then the exact attack from the issue, then every
# process this command can see.
ATTACK = r"""
p=$$
while [ -r /proc/$p/status ]; do
  tr '\0' '\n' < /proc/$p/environ
  [ "$p" -le 1 ] && break
  p=$(awk '/^PPid:/ {print $2}' /proc/$p/status)
done
tr '\0' '\n' < /proc/$PPID/environ
for f in /proc/[0-9]*/environ; do tr '\0' '\n' < "$f"; done 2>/dev/null
env
"""


@pytest.fixture(params=[True, False], ids=["sandbox-on", "sandbox-off"])
def sandbox(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


class Tools:
    """The three process tools on a workspace under tmp_path, with a sibling outside it."""

    def __init__(self, tmp_path: Path, **options: object) -> None:
        self.root = tmp_path / "ws"
        self.outside = tmp_path / "outside"
        self.outside.mkdir(parents=True, exist_ok=True)
        self.tools: dict[str, Tool] = {
            t.name: t
            for t in shell_tools(Workspace(self.root), **options)  # type: ignore[arg-type]
        }

    def shell(self, command: str, timeout: int = 30) -> str:
        output = self.tools["execute_shell_command"].call({"command": command, "timeout": timeout})
        assert not output.is_error, output.text()
        return output.text()

    def python(self, code: str) -> str:
        output = self.tools["execute_python_code"].call({"code": code})
        assert not output.is_error, output.text()
        return output.text()


def marked_processes(marker: str) -> list[int]:
    """Live pids (seen from here) whose command line carries `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def settle(check: object, seconds: float = 5.0) -> bool:
    """Poll `check()` until true: a killed process may take a moment to leave /proc."""
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextlib.contextmanager
def cleanup(marker: str) -> Iterator[None]:
    """Kill, by pid, whatever carries `marker` if a test leaves it running."""
    try:
        yield
    finally:
        for pid in marked_processes(marker):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def spawn_strays(marker: str) -> str:
    """Four ways to leave a process running; each writes its own pid to `pids` first."""
    return textwrap.dedent(f"""\
        rm -f pids
        bash -c 'echo $$ >> pids; exec -a {marker}-bg yes' > /dev/null &
        nohup bash -c 'echo $$ >> pids; exec -a {marker}-nohup sleep 3600' > /dev/null 2>&1 &
        setsid bash -c 'echo $$ >> pids; exec -a {marker}-setsid sleep 3600' > /dev/null 2>&1 &
        setsid -f bash -c 'echo $$ >> pids; exec -a {marker}-daemon sleep 3600' > /dev/null 2>&1
        until [ -f pids ] && [ "$(wc -l < pids)" -ge 4 ]; do sleep 0.02; done
        echo started
        """)


# --- the child environment ------------------------------------------------------


def test_secret_names_follow_the_broad_rule() -> None:
    for name in [
        "ANTHROPIC_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "MY_PASSWORD",
        "DB_PASSWD",
        "GITHUB_TOKEN",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "SSH_PRIVATE_KEYFILE",
        "HTTP_AUTH",
        "AUTH_HEADER",
        "npm_config__auth",
        "lower_api_key",
    ]:
        assert _is_secret_name(name), name
    for name in ["PATH", "HOME", "AUTHOR", "AUTHOR_NAME", "OAUTHLIB_DEBUG", "LANG", "MAX_TURNS"]:
        assert not _is_secret_name(name), name


def test_scrubbed_env_drops_secret_names_and_urls_with_passwords(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UPSTREAM", "https://user:s3cretpass@git.example/repo.git")
    monkeypatch.setenv("MIRROR", "https://git.example/repo.git")  # no password: kept
    monkeypatch.setenv("AUTHOR", "Ada")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    env = scrubbed_env()
    assert not set(SECRETS) & set(env)
    assert "UPSTREAM" not in env
    assert env["MIRROR"] == "https://git.example/repo.git"
    assert env["AUTHOR"] == "Ada"
    assert "MPLBACKEND" not in env  # the kernel's inline backend cannot work in a child


def test_env_shows_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: bool
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    tools = Tools(tmp_path, sandbox=sandbox)
    out = tools.shell("env")
    assert "PATH=" in out
    assert [v for v in SECRET_VALUES if v in out] == []
    out = tools.python("import os; print(dict(os.environ))")
    assert "PATH" in out and [v for v in SECRET_VALUES if v in out] == []


def _attack_from_a_fresh_kernel(tmp_path: Path, sandbox: bool) -> str:
    """Run ATTACK from a process whose own starting environment holds the secrets.

    /proc/<pid>/environ shows a process's environment as it started, so the
    secrets must be there from the start, as they are for a kernel launched
    from a shell that exported them.
    """
    ws = tmp_path / "ws"
    ws.mkdir()
    script = textwrap.dedent(f"""\
        from pathlib import Path
        from nbagent.tools.process import format_process_result, run_process
        r = run_process(["bash", "-c", {ATTACK!r}], cwd=Path({str(ws)!r}), timeout=30,
                        shell=False, sandbox={sandbox!r})
        print(format_process_result(r, max_chars=10_000_000))
        """)
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **SECRETS},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_proc_environ_of_the_kernel_is_out_of_reach_in_the_sandbox(tmp_path: Path) -> None:
    out = _attack_from_a_fresh_kernel(tmp_path, sandbox=True)
    assert "PATH=" in out  # the reads ran and printed environments
    assert [v for v in SECRET_VALUES if v in out] == []


def test_without_the_sandbox_the_kernel_environ_is_readable(tmp_path: Path) -> None:
    # What the sandbox is for (and the README says): without it the same
    # attack reads the kernel's own starting environment. This also proves the
    # attack above would find the secrets if they were reachable.
    out = _attack_from_a_fresh_kernel(tmp_path, sandbox=False)
    assert SECRET_VALUES[0] in out


# --- bounded memory -------------------------------------------------------------

MEMORY_SCRIPT = """\
import json, resource, sys
from pathlib import Path
from nbagent.tools.shell import shell_tools
from nbagent.tools.workspace import Workspace

ws, sandbox, shell_command, python_code = json.loads(sys.argv[1])
tools = {t.name: t for t in shell_tools(Workspace(Path(ws)), sandbox=sandbox)}
tools["execute_shell_command"].call({"command": "true"})  # warm up: imports, sandbox probe


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


base = peak_mb()
shell = tools["execute_shell_command"].call({"command": shell_command, "timeout": 100}).text()
after_shell = peak_mb()
python = tools["execute_python_code"].call({"code": python_code}).text()
print(json.dumps({"shell_mb": after_shell - base, "python_mb": peak_mb() - base,
                  "shell": shell, "python": python}))
"""
PRINT_200_MB = "import sys\nfor _ in range(200):\n    sys.stdout.write('x' * 999_999 + '\\n')\n"


def test_200_mb_of_output_keeps_memory_flat(tmp_path: Path, sandbox: bool) -> None:
    args = json.dumps([str(tmp_path / "ws"), sandbox, "yes | head -c 200000000", PRINT_200_MB])
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, args], capture_output=True, text=True, timeout=110
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # Generous ceilings: the 50 MB target is measured in benchmarks/tool_memory.py.
    # Collecting the whole output first took 600+ MB here.
    assert result["shell_mb"] < 300, result["shell_mb"]
    assert result["python_mb"] < 300, result["python_mb"]

    shell = result["shell"]
    assert shell.startswith("exit code: 0\n--- stdout ---\ny\ny\n")
    assert "--- stderr ---" not in shell  # `yes` ended by SIGPIPE, silently, as in a terminal
    kept = shell.count("y")
    omitted = 200_000_000 - 2 * kept
    assert f"[... {omitted:,} characters ({omitted // 2:,} lines) omitted ...]" in shell
    assert len(shell) < 60_000

    python = result["python"]
    assert python.startswith("exit code: 0\n--- stdout ---\nxxx")
    assert python.endswith("xxx")
    assert "characters (" in python and "lines) omitted ...]" in python
    assert len(python) < 60_000


def test_head_tail_buffer_counts_what_it_drops() -> None:
    buf = HeadTail(10)  # five bytes of head, five of tail
    for chunk in [b"abc", b"de\n12", b"\n34\n", b"56789", b"xyz"]:
        buf.write(chunk)
    assert buf.report() == {
        "head": "abcde",
        "tail": "89xyz",
        "omitted_chars": len("\n12\n34\n567"),
        "omitted_lines": 3,
    }


def test_head_tail_buffer_keeps_small_output_whole_and_cuts_between_characters() -> None:
    small = HeadTail(100)
    small.write("héllo\n".encode())
    assert small.report() == {"head": "héllo\n", "tail": "", "omitted_chars": 0, "omitted_lines": 0}

    # Two bytes each side: the head ends inside "é", the tail starts inside "€".
    buf = HeadTail(4)
    buf.write("aé€b€z".encode())
    assert buf.report() == {"head": "a", "tail": "z", "omitted_chars": 4, "omitted_lines": 0}


def test_clip_notice_from_the_wrapper_says_characters_and_lines() -> None:
    r = ProcessResult("head\ntail", "", 0, False, stdout_omitted=Omission(5, 1234567, 890))
    out = format_process_result(r)
    assert (
        out
        == "exit code: 0\n--- stdout ---\nhead\n\n[... 1,234,567 characters (890 lines) omitted ...]\ntail"
    )


# --- no stray processes ---------------------------------------------------------


def test_background_nohup_and_setsid_children_are_gone_when_the_command_ends(
    tmp_path: Path, sandbox: bool
) -> None:
    tools = Tools(tmp_path, sandbox=sandbox)
    marker = f"nbagent-stray-{uuid.uuid4().hex}"
    with cleanup(marker):
        # `yes` keeps stderr attached: the call must still return when the
        # command ends, not wait out its 60 s timeout.
        out = tools.shell(spawn_strays(marker), timeout=60)
        assert out.startswith("exit code: 0\n[killed 4 background processes left running]")
        assert "started" in out
        assert settle(lambda: not marked_processes(marker)), marked_processes(marker)
        if not sandbox:  # inside the sandbox the pids are the PID namespace's
            pids = [int(p) for p in (tools.root / "pids").read_text().split()]
            assert len(pids) == 4 and all(gone(pid) for pid in pids)


def test_python_tool_children_are_gone_too(tmp_path: Path, sandbox: bool) -> None:
    tools = Tools(tmp_path, sandbox=sandbox)
    marker = f"nbagent-pystray-{uuid.uuid4().hex}"
    code = (
        "import subprocess\n"
        f"subprocess.Popen(['bash', '-c', 'exec -a {marker} sleep 3600'], start_new_session=True)\n"
        "print('spawned')"
    )
    with cleanup(marker):
        out = tools.python(code)
        assert "[killed 1 background process left running]" in out
        assert settle(lambda: not marked_processes(marker))


def test_timeout_kills_everything(tmp_path: Path, sandbox: bool) -> None:
    tools = Tools(tmp_path, sandbox=sandbox)
    marker = f"nbagent-timeout-{uuid.uuid4().hex}"
    with cleanup(marker):
        out = tools.shell(spawn_strays(marker) + f"exec -a {marker}-fg sleep 3600", timeout=5)
        assert out.startswith("timed out after 5s; the process group was killed")
        assert "[also killed 4 other processes it had started]" in out
        assert "started" in out  # output from before the timeout is kept
        assert settle(lambda: not marked_processes(marker)), marked_processes(marker)


def test_keyboard_interrupt_kills_everything(tmp_path: Path, sandbox: bool) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    marker = f"nbagent-interrupt-{uuid.uuid4().hex}"

    def interrupt_once_started() -> None:
        settle(lambda: (ws / "pids").exists() and len((ws / "pids").read_text().split()) >= 4, 30)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, delivered to the main thread

    with cleanup(marker):
        threading.Thread(target=interrupt_once_started, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            run_process(
                ["bash", "-c", spawn_strays(marker) + "sleep 3600"],
                cwd=ws,
                timeout=60,
                shell=False,
                sandbox=sandbox,
            )
        assert settle(lambda: not marked_processes(marker)), marked_processes(marker)


def test_a_hard_kill_of_the_kernel_takes_the_tool_processes_with_it(
    tmp_path: Path, sandbox: bool
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    marker = f"nbagent-kernelkill-{uuid.uuid4().hex}"
    script = textwrap.dedent(f"""\
        from pathlib import Path
        from nbagent.tools.process import run_process
        run_process(["bash", "-c", {spawn_strays(marker) + "sleep 3600"!r}], cwd=Path({str(ws)!r}),
                    timeout=60, shell=False, sandbox={sandbox!r})
        """)
    with cleanup(marker):
        kernel = subprocess.Popen([sys.executable, "-c", script])
        try:
            assert settle(lambda: len(marked_processes(marker + "-")) >= 4, 30)
        finally:
            kernel.kill()  # SIGKILL: no handler, no finally in the kernel runs
            kernel.wait()
        assert settle(lambda: not marked_processes(marker)), marked_processes(marker)


# --- the sandbox ----------------------------------------------------------------


def test_sandbox_allows_writes_only_to_workspace_tmp_and_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    tools = Tools(tmp_path, sandbox=True)
    host_tmp = Path(f"/tmp/nbagent-host-{uuid.uuid4().hex}")
    inside_tmp = Path(f"/tmp/nbagent-inside-{uuid.uuid4().hex}")
    host_tmp.write_text("host")
    etc_file = f"/etc/nbagent-{uuid.uuid4().hex}"
    try:
        out = tools.shell(
            f"""
            echo in-workspace > ok.txt && echo wrote-workspace
            echo x > {tools.outside}/escaped.txt || echo outside-refused
            echo x > {etc_file} || echo etc-refused
            mount -o remount,rw / 2>/dev/null; echo x > {etc_file} 2>/dev/null || echo remount-refused
            cat {host_tmp} 2>/dev/null || echo host-tmp-hidden
            echo x > {inside_tmp} && echo wrote-tmp
            echo x > "$XDG_CACHE_HOME/cached" && echo wrote-cache
            """
        )
        for word in [
            "wrote-workspace",
            "outside-refused",
            "etc-refused",
            "remount-refused",
            "host-tmp-hidden",
            "wrote-tmp",
            "wrote-cache",
        ]:
            assert word in out, out
        assert (tools.root / "ok.txt").read_text() == "in-workspace\n"
        assert not (tools.outside / "escaped.txt").exists()
        assert not Path(etc_file).exists()
        assert not inside_tmp.exists()  # the sandbox's /tmp was its own
        assert (cache / "cached").exists()
    finally:
        host_tmp.unlink()
        with contextlib.suppress(OSError):
            inside_tmp.unlink()
            Path(etc_file).unlink()


def test_without_the_sandbox_the_workspace_is_just_the_working_directory(
    tmp_path: Path,
) -> None:
    tools = Tools(tmp_path, sandbox=False)
    out = tools.shell(f"echo x > ok.txt && echo x > {tools.outside}/written.txt && echo both")
    assert "both" in out
    assert (tools.root / "ok.txt").exists() and (tools.outside / "written.txt").exists()


def test_sandbox_shows_only_its_own_processes(tmp_path: Path) -> None:
    tools = Tools(tmp_path, sandbox=True)
    out = tools.shell(f"ls /proc | grep -cE '^[0-9]+$'; test -e /proc/{os.getpid()} || echo hidden")
    count = int(out.split("--- stdout ---\n")[1].splitlines()[0])
    assert count < 10 and "hidden" in out


def test_sandbox_hides_jupyter_runtime_files_and_service_sockets(
    monkeypatch: pytest.MonkeyPatch, sandbox: bool
) -> None:
    # Outside /tmp (which the sandbox replaces anyway), the workspace and the cache.
    base = Path(f"/var/tmp/nbagent-test-{uuid.uuid4().hex}")
    runtime, xdg = base / "jupyter-runtime", base / "xdg-runtime"
    runtime.mkdir(parents=True)
    xdg.mkdir()
    (runtime / "kernel-1.json").write_text('{"key": "hmac-kernelsecret0006"}')
    bus = socket.socket(socket.AF_UNIX)
    bus.bind(str(xdg / "bus"))
    bus.listen(1)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    try:
        tools = Tools(base, sandbox=sandbox)
        out = tools.shell(
            'cat "$JUPYTER_RUNTIME_DIR/kernel-1.json" || echo no-connection-file\n'
            'python -c "import os, socket; s = socket.socket(socket.AF_UNIX); '
            "s.connect(os.environ['XDG_RUNTIME_DIR'] + '/bus'); print('bus-reached')\" "
            "2>/dev/null || echo no-bus"
        )
    finally:
        bus.close()
        shutil.rmtree(base)
    if sandbox:
        assert "no-connection-file" in out and "kernelsecret0006" not in out
        assert "no-bus" in out and "bus-reached" not in out
    else:  # what the sandbox adds
        assert "kernelsecret0006" in out and "bus-reached" in out


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_network_is_on_by_default_and_can_be_cut(tmp_path: Path, listener: int) -> None:
    code = (
        "import socket\n"
        f"socket.create_connection(('127.0.0.1', {listener}), timeout=5).close()\n"
        "print('connected')"
    )
    assert "connected" in Tools(tmp_path, sandbox=True).python(code)
    cut = Tools(tmp_path, sandbox=True, network=False).python(code)
    assert "connected" not in cut and "ConnectionRefusedError" in cut


def test_cutting_the_network_without_the_sandbox_fails_closed(tmp_path: Path) -> None:
    tools = Tools(tmp_path, sandbox=False, network=False)
    with pytest.raises(ToolError, match="cutting the network needs the sandbox"):
        tools.shell("touch ran")
    assert not (tools.root / "ran").exists()


def test_sandbox_keeps_python_usable(tmp_path: Path) -> None:
    # matplotlib warns on import when ~/.config/matplotlib is not writable.
    tools = Tools(tmp_path, sandbox=True)
    out = tools.python(
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "plt.plot([1, 2]); plt.savefig('fig.png'); print('saved')"
    )
    assert out == "exit code: 0\n--- stdout ---\nsaved", out
    assert (tools.root / "fig.png").exists()


def test_missing_command_is_reported_not_raised(tmp_path: Path, sandbox: bool) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    r = run_process(["no-such-program-xyz"], cwd=ws, timeout=10, shell=False, sandbox=sandbox)
    assert r.exit_code == 127 and "no-such-program-xyz" in r.stderr


def test_required_sandbox_error_is_a_tool_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbagent.tools import sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "probe", lambda network=True: "bwrap is not installed.")
    tools = Tools(tmp_path, sandbox=True)
    with pytest.raises(ToolError, match="the sandbox is required, but bubblewrap does not work"):
        tools.shell("touch ran")
    assert not (tools.root / "ran").exists()
    # "auto" falls back to running without it.
    auto = Tools(tmp_path, sandbox="auto")
    assert auto.shell("touch ran; echo fine").endswith("fine")
    assert (tools.root / "ran").exists()
