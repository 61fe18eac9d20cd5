"""The seed's built-in tools, called through `Tool.call` the way the model calls them."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from nbagent.events import Notice
from nbagent.tools.base import Tool, ToolError, ToolInputError
from nbagent.tools.builtin import builtin_tools
from nbagent.tools.process import ProcessResult, format_process_result, run_process, scrubbed_env
from nbagent.tools.workspace import Workspace, atomic_write

SEED_ORDER = [
    "message_notify_user",
    "create_file",
    "read_file",
    "read_file_lines",
    "replace_string_in_file",
    "list_directory",
    "create_directory",
    "delete_file",
    "delete_directory",
    "get_file_info",
    "execute_shell_command",
    "execute_python_code",
    "execute_python_file",
]


class Kit:
    """A workspace under tmp_path, a sibling directory outside it, and the tools."""

    def __init__(self, tmp_path: Path, **options: Any) -> None:
        self.root = tmp_path / "ws"
        self.outside = tmp_path / "outside"
        self.outside.mkdir()
        self.ws = Workspace(self.root)
        self.notices: list[Notice] = []
        self.tools = {t.name: t for t in builtin_tools(self.ws, self.notices.append, **options)}

    def __call__(self, name: str, **arguments: object) -> str:
        output = self.tools[name].call(arguments)
        assert not output.is_error
        return output.text()


@pytest.fixture
def kit(tmp_path: Path) -> Kit:
    return Kit(tmp_path)


def process_gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie counts: init may be slow to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return state in ("Z", "X")


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.05)
    return process_gone(pid)


# --- the toolset -----------------------------------------------------------


def test_builtin_tools_in_seed_order_with_categories(kit: Kit) -> None:
    tools = builtin_tools(kit.ws, kit.notices.append)
    assert [t.name for t in tools] == SEED_ORDER
    assert all(isinstance(t, Tool) for t in tools)
    categories = {t.name: t.category for t in tools}
    read_only = {t.name for t in tools if t.read_only}
    assert read_only == {
        "message_notify_user",
        "read_file",
        "read_file_lines",
        "list_directory",
        "get_file_info",
    }
    assert {n for n, c in categories.items() if c == "read"} == read_only
    assert {n for n, c in categories.items() if c == "write"} == {
        "create_file",
        "replace_string_in_file",
        "create_directory",
    }
    assert {n for n, c in categories.items() if c == "destructive"} == {
        "delete_file",
        "delete_directory",
    }
    assert {n for n, c in categories.items() if c == "execute"} == {
        "execute_shell_command",
        "execute_python_code",
        "execute_python_file",
    }


def test_schemas_match_the_seed_parameters(kit: Kit) -> None:
    schemas = {name: t.to_param()["input_schema"] for name, t in kit.tools.items()}
    assert schemas["create_file"]["required"] == ["file_path"]
    assert schemas["create_file"]["properties"]["content"]["default"] == ""
    assert schemas["read_file_lines"]["required"] == ["file_path", "start_line", "end_line"]
    assert schemas["list_directory"]["properties"]["directory_path"]["default"] == "."
    assert schemas["execute_shell_command"]["properties"]["timeout"]["default"] == 30
    assert schemas["message_notify_user"]["properties"]["attachments"]["default"] == []
    for name, schema in schemas.items():
        for prop, spec in schema["properties"].items():
            assert spec.get("description"), f"{name}.{prop} has no description"


def test_bad_input_is_rejected_before_running(kit: Kit) -> None:
    with pytest.raises(ToolInputError, match="start_line"):
        kit.tools["read_file_lines"].call({"file_path": "a", "start_line": "x", "end_line": 2})


# --- notify ----------------------------------------------------------------


def test_message_notify_user_emits_a_notice(kit: Kit) -> None:
    out = kit("message_notify_user", text="Halfway there", attachments=["plot.png"])
    assert out == "Message delivered to the user."
    assert kit.notices == [Notice(text="Halfway there", attachments=("plot.png",))]
    kit("message_notify_user", text="done")
    assert kit.notices[-1] == Notice(text="done", attachments=())


# --- create / read ---------------------------------------------------------


def test_create_file_creates_parents_and_reports_bytes(kit: Kit) -> None:
    out = kit("create_file", file_path="a/b/note.txt", content="héllo\n")
    assert "Created" in out and "7 bytes" in out and "a/b/note.txt" in out
    assert (kit.root / "a/b/note.txt").read_text(encoding="utf-8") == "héllo\n"

    out = kit("create_file", file_path="a/b/note.txt", content="new")
    assert "Overwrote" in out and "3 bytes" in out
    assert (kit.root / "a/b/note.txt").read_text() == "new"

    kit("create_file", file_path="empty.txt")
    assert (kit.root / "empty.txt").read_bytes() == b""


def test_create_file_accepts_absolute_path_inside_workspace(kit: Kit) -> None:
    target = kit.root / "abs.txt"
    kit("create_file", file_path=str(target), content="x")
    assert target.read_text() == "x"


def test_create_file_refuses_a_directory(kit: Kit) -> None:
    (kit.root / "d").mkdir()
    with pytest.raises(ToolError, match="'d' is a directory"):
        kit("create_file", file_path="d", content="x")


def test_new_file_gets_umask_mode_and_overwrite_keeps_mode(kit: Kit) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    kit("create_file", file_path="new.txt", content="x")
    assert stat.S_IMODE((kit.root / "new.txt").stat().st_mode) == 0o666 & ~mask

    script = kit.root / "run.sh"
    script.write_text("echo old\n")
    script.chmod(0o750)
    kit("create_file", file_path="run.sh", content="echo new\n")
    assert stat.S_IMODE(script.stat().st_mode) == 0o750


def test_read_file_returns_content(kit: Kit) -> None:
    (kit.root / "r.txt").write_text("one\ntwo\n")
    assert kit("read_file", file_path="r.txt") == "one\ntwo\n"
    (kit.root / "e.txt").write_text("")
    assert "empty" in kit("read_file", file_path="e.txt")


def test_read_file_errors(kit: Kit) -> None:
    with pytest.raises(ToolError, match="'nope.txt' does not exist"):
        kit("read_file", file_path="nope.txt")
    (kit.root / "sub").mkdir()
    with pytest.raises(ToolError, match="'sub' is a directory"):
        kit("read_file", file_path="sub")


@pytest.mark.parametrize(
    "data",
    [b"valid utf-8 \x00 with a NUL\n", b"caf\xe9 au lait\n"],
    ids=["nul-byte", "not-utf8"],
)
def test_binary_files_are_refused(kit: Kit, data: bytes) -> None:
    (kit.root / "blob.bin").write_bytes(data)
    with pytest.raises(ToolError, match="'blob.bin' is a binary file"):
        kit("read_file", file_path="blob.bin")
    with pytest.raises(ToolError, match="binary"):
        kit("read_file_lines", file_path="blob.bin", start_line=1, end_line=1)
    with pytest.raises(ToolError, match="binary"):
        kit("replace_string_in_file", file_path="blob.bin", old_string="a", new_string="b")
    assert (kit.root / "blob.bin").read_bytes() == data
    assert "content: binary" in kit("get_file_info", file_path="blob.bin")


def test_large_file_is_clipped_with_full_size(tmp_path: Path) -> None:
    kit = Kit(tmp_path, max_output_chars=1000)
    content = "".join(f"line {i:05d}\n" for i in range(1, 501))  # 11 bytes a line
    (kit.root / "big.txt").write_text(content)
    out = kit("read_file", file_path="big.txt")
    # Whole lines 1..n, then an exact hint to continue at n + 1; within the one limit.
    shown, notice = out.split("[Clipped", 1)
    n = shown.count("\n")
    assert 0 < n < 500 and shown == content[: 11 * n] and len(out) <= 1000
    assert "5,500 bytes" in notice and "500 lines" in notice
    assert f'read_file_lines(file_path="big.txt", start_line={n + 1},' in notice


def test_read_file_lines_numbers_lines(kit: Kit) -> None:
    (kit.root / "l.txt").write_bytes(b"alpha\r\nbeta\ngamma\ndelta")
    out = kit("read_file_lines", file_path="l.txt", start_line=2, end_line=3)
    assert "2 | beta" in out and "3 | gamma" in out
    assert "alpha" not in out and "delta" not in out
    assert "of 4" in out
    out = kit("read_file_lines", file_path="l.txt", start_line=1, end_line=1)
    assert out.splitlines()[1] == "1 | alpha"  # the \r of CRLF is not shown
    out = kit("read_file_lines", file_path="l.txt", start_line=3, end_line=99)
    assert "4 | delta" in out and "ends at line 4" in out


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [(0, 2, "start_line must be 1"), (3, 2, "end_line"), (9, 12, "has 4 lines")],
)
def test_read_file_lines_bad_ranges(kit: Kit, start: int, end: int, message: str) -> None:
    (kit.root / "l.txt").write_text("a\nb\nc\nd\n")
    with pytest.raises(ToolError, match=message):
        kit("read_file_lines", file_path="l.txt", start_line=start, end_line=end)


# --- replace ---------------------------------------------------------------


def test_replace_string_in_file(kit: Kit) -> None:
    (kit.root / "code.py").write_bytes(b"x = 1\r\ny = 2\r\n")
    out = kit("replace_string_in_file", file_path="code.py", old_string="y = 2", new_string="y = 3")
    assert "line 2" in out
    assert (kit.root / "code.py").read_bytes() == b"x = 1\r\ny = 3\r\n"  # CRLF kept


def test_replace_string_missing_or_repeated(kit: Kit) -> None:
    path = kit.root / "r.txt"
    path.write_text("a a a\n")
    with pytest.raises(ToolError, match="not found in 'r.txt'"):
        kit("replace_string_in_file", file_path="r.txt", old_string="b", new_string="c")
    with pytest.raises(ToolError, match="appears 3 times in 'r.txt'"):
        kit("replace_string_in_file", file_path="r.txt", old_string="a", new_string="c")
    with pytest.raises(ToolError, match="must not be empty"):
        kit("replace_string_in_file", file_path="r.txt", old_string="", new_string="c")
    with pytest.raises(ToolError, match="'gone.txt' does not exist"):
        kit("replace_string_in_file", file_path="gone.txt", old_string="a", new_string="c")
    assert path.read_text() == "a a a\n"


# --- atomic writes ---------------------------------------------------------


def test_atomic_write_leaves_no_temp_files(kit: Kit) -> None:
    kit("create_file", file_path="f.txt", content="one")
    kit("create_file", file_path="f.txt", content="two")
    kit("replace_string_in_file", file_path="f.txt", old_string="two", new_string="three")
    assert sorted(p.name for p in kit.root.iterdir()) == ["f.txt"]
    assert (kit.root / "f.txt").read_text() == "three"


def test_failed_write_keeps_old_content(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    path = kit.root / "keep.txt"
    path.write_text("original")

    def broken_replace(src: object, dst: object, **_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ToolError, match="No space left"):
        kit("create_file", file_path="keep.txt", content="new")
    with pytest.raises(ToolError, match="No space left"):
        kit("replace_string_in_file", file_path="keep.txt", old_string="orig", new_string="X")
    with pytest.raises(OSError):
        atomic_write(path, b"raw")
    assert path.read_text() == "original"
    assert [p.name for p in kit.root.iterdir()] == ["keep.txt"]


def test_atomic_write_through_symlink_updates_target(kit: Kit) -> None:
    (kit.root / "real.txt").write_text("old")
    (kit.root / "alias.txt").symlink_to("real.txt")
    kit("create_file", file_path="alias.txt", content="new")
    assert (kit.root / "alias.txt").is_symlink()
    assert (kit.root / "real.txt").read_text() == "new"


# --- escapes ---------------------------------------------------------------

ESCAPES = ["../x", "/etc/passwd", "sub/../../x", "~/x"]


@pytest.mark.parametrize("path", ESCAPES)
def test_paths_outside_the_workspace_are_refused(kit: Kit, path: str) -> None:
    (kit.root / "sub").mkdir()
    calls = [
        ("read_file", {"file_path": path}),
        ("read_file_lines", {"file_path": path, "start_line": 1, "end_line": 2}),
        ("create_file", {"file_path": path, "content": "pwned"}),
        ("replace_string_in_file", {"file_path": path, "old_string": "a", "new_string": "b"}),
        ("delete_file", {"file_path": path}),
        ("delete_directory", {"directory_path": path}),
        ("create_directory", {"directory_path": path}),
        ("list_directory", {"directory_path": path}),
        ("get_file_info", {"file_path": path}),
        ("execute_python_file", {"file_path": path}),
    ]
    for name, arguments in calls:
        with pytest.raises(ToolError, match="outside the workspace") as info:
            kit(name, **arguments)
        assert f"'{path}'" in str(info.value), name
    assert not (kit.root.parent / "x").exists()


def test_symlinks_leading_outside_are_refused(kit: Kit) -> None:
    secret = kit.outside / "secret.txt"
    secret.write_text("top secret")
    (kit.root / "link.txt").symlink_to(secret)
    (kit.root / "dirlink").symlink_to(kit.outside)

    refused = [
        ("read_file", {"file_path": "link.txt"}),
        ("create_file", {"file_path": "link.txt", "content": "pwned"}),
        (
            "replace_string_in_file",
            {"file_path": "link.txt", "old_string": "top", "new_string": "x"},
        ),
        ("delete_file", {"file_path": "link.txt"}),
        ("read_file", {"file_path": "dirlink/secret.txt"}),
        ("create_file", {"file_path": "dirlink/new.txt", "content": "pwned"}),
        ("delete_file", {"file_path": "dirlink/secret.txt"}),
        ("delete_directory", {"directory_path": "dirlink"}),
        ("list_directory", {"directory_path": "dirlink"}),
    ]
    for name, arguments in refused:
        with pytest.raises(ToolError, match="symlink .*outside the workspace"):
            kit(name, **arguments)
    assert secret.read_text() == "top secret"
    assert sorted(p.name for p in kit.outside.iterdir()) == ["secret.txt"]
    # A recursive listing shows the link but does not follow it.
    listing = kit("list_directory", recursive=True)
    assert "dirlink -> " in listing and "secret.txt" not in listing.replace(str(secret), "")


def test_allow_outside_lifts_the_restriction(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("out")
    ws = Workspace(tmp_path / "ws", allow_outside=True)
    assert ws.resolve("../x.txt") == tmp_path.resolve() / "x.txt"
    assert ws.relative(ws.resolve("a/b")) == "a/b"
    assert ws.relative(ws.root) == "."


def test_workspace_root_is_created_and_resolved(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "new" / "root")
    assert ws.root.is_dir() and ws.root.is_absolute()
    assert ws.resolve("a/../b") == ws.root / "b"
    with pytest.raises(ToolError, match=r"Path '\.\./x' is outside the workspace .*only paths"):
        ws.resolve("../x")


# --- directories -----------------------------------------------------------


def test_list_directory(kit: Kit) -> None:
    (kit.root / "b_dir").mkdir()
    (kit.root / "b_dir" / "inner.txt").write_text("i")
    (kit.root / "a.txt").write_text("x" * 2048)
    (kit.root / "c.txt").write_text("12345")
    (kit.root / ".hidden").mkdir()
    (kit.root / ".hidden" / "h.txt").write_text("h")

    lines = kit("list_directory").splitlines()
    assert lines[1:4] == ["a.txt  (2.0 KB)", "b_dir/", "c.txt  (5 bytes)"]
    assert "1 hidden" in lines[-1]
    assert ".hidden/" in kit("list_directory", show_hidden=True)

    deep = kit("list_directory", recursive=True)
    assert "b_dir/inner.txt" in deep and "h.txt" not in deep
    deep_all = kit("list_directory", recursive=True, show_hidden=True)
    assert ".hidden/h.txt" in deep_all
    assert "inner.txt" in kit("list_directory", directory_path="b_dir")


def test_list_directory_errors_and_empty(kit: Kit) -> None:
    with pytest.raises(ToolError, match="'missing' does not exist"):
        kit("list_directory", directory_path="missing")
    (kit.root / "f.txt").write_text("")
    with pytest.raises(ToolError, match="'f.txt' is a file"):
        kit("list_directory", directory_path="f.txt")
    (kit.root / "void").mkdir()
    assert "is empty" in kit("list_directory", directory_path="void")


def test_recursive_listing_is_capped(kit: Kit) -> None:
    many = kit.root / "many"
    many.mkdir()
    for i in range(1010):
        (many / f"f{i:04d}.txt").touch()
    lines = kit("list_directory", recursive=True).splitlines()
    assert "stopped at 1000 entries" in lines[-1]
    assert len(lines) == 1 + 1000 + 1  # header, entries, notice


def test_create_directory(kit: Kit) -> None:
    assert "Created" in kit("create_directory", directory_path="x/y/z")
    assert (kit.root / "x/y/z").is_dir()
    assert "already exists" in kit("create_directory", directory_path="x/y")
    (kit.root / "f").write_text("")
    with pytest.raises(ToolError, match="'f' exists and is a file"):
        kit("create_directory", directory_path="f")


def test_delete_file(kit: Kit) -> None:
    (kit.root / "d.txt").write_text("x")
    assert "Deleted file 'd.txt'" in kit("delete_file", file_path="d.txt")
    assert not (kit.root / "d.txt").exists()
    with pytest.raises(ToolError, match="'d.txt' does not exist"):
        kit("delete_file", file_path="d.txt")
    (kit.root / "dir").mkdir()
    with pytest.raises(ToolError, match="'dir' is a directory"):
        kit("delete_file", file_path="dir")
    assert (kit.root / "dir").is_dir()


def test_delete_file_on_inner_symlink_removes_only_the_link(kit: Kit) -> None:
    (kit.root / "target.txt").write_text("keep me")
    (kit.root / "ln").symlink_to("target.txt")
    kit("delete_file", file_path="ln")
    assert not (kit.root / "ln").is_symlink()
    assert (kit.root / "target.txt").read_text() == "keep me"


def test_delete_directory(kit: Kit) -> None:
    (kit.root / "tree/sub").mkdir(parents=True)
    (kit.root / "tree/sub/f.txt").write_text("x")
    out = kit("delete_directory", directory_path="tree")
    assert "Deleted directory 'tree'" in out and "2 entries" in out
    assert not (kit.root / "tree").exists()
    with pytest.raises(ToolError, match="'tree' does not exist"):
        kit("delete_directory", directory_path="tree")
    (kit.root / "f.txt").write_text("x")
    with pytest.raises(ToolError, match="'f.txt' is a file"):
        kit("delete_directory", directory_path="f.txt")
    assert (kit.root / "f.txt").exists()


@pytest.mark.parametrize("path", [".", "", "sub/..", "ROOT"])
def test_delete_directory_refuses_the_workspace_root(kit: Kit, path: str) -> None:
    (kit.root / "sub").mkdir()
    (kit.root / "precious.txt").write_text("x")
    path = str(kit.root) if path == "ROOT" else path
    with pytest.raises(ToolError, match="workspace root"):
        kit("delete_directory", directory_path=path)
    assert (kit.root / "precious.txt").exists()


def test_get_file_info(kit: Kit) -> None:
    path = kit.root / "info.txt"
    path.write_text("a\nb\nc")
    path.chmod(0o640)
    out = kit("get_file_info", file_path="info.txt")
    assert "type: file" in out
    assert "size: 5 bytes" in out
    assert "lines: 3" in out
    assert "-rw-r----- (0640)" in out
    modified = re.search(r"modified: (\S+)", out)
    assert modified is not None
    stamp = datetime.fromisoformat(modified.group(1))
    assert abs(stamp.timestamp() - path.stat().st_mtime) < 1

    (kit.root / "d").mkdir()
    (kit.root / "d" / "x").touch()
    out = kit("get_file_info", file_path="d")
    assert "type: directory" in out and "entries: 1" in out
    with pytest.raises(ToolError, match="'nope' does not exist"):
        kit("get_file_info", file_path="nope")


# --- processes -------------------------------------------------------------


def test_shell_command_output_and_exit_code(kit: Kit) -> None:
    out = kit("execute_shell_command", command="echo out; echo err >&2; exit 3")
    assert out.splitlines() == ["exit code: 3", "--- stdout ---", "out", "--- stderr ---", "err"]
    assert kit("execute_shell_command", command="true") == "exit code: 0\n(no output)"
    out = kit("execute_shell_command", command="echo only")
    assert "--- stderr ---" not in out


def test_shell_command_runs_in_workspace_with_bash(kit: Kit) -> None:
    out = kit("execute_shell_command", command="pwd; [[ 1 == 1 ]] && echo bash-ok")
    assert str(kit.root) in out and "bash-ok" in out
    with pytest.raises(ToolError, match="timeout must be"):
        kit("execute_shell_command", command="true", timeout=0)
    with pytest.raises(ToolError, match="empty"):
        kit("execute_shell_command", command="  ")


@pytest.mark.skipif(os.name != "posix", reason="needs os.pipe on fd 0")
def test_shell_command_does_not_read_the_callers_stdin(kit: Kit) -> None:
    # In a kernel, fd 0 may be a pipe nobody writes to; a child inheriting it would hang.
    read_end, write_end = os.pipe()
    saved = os.dup(0)
    os.dup2(read_end, 0)
    try:
        out = kit("execute_shell_command", command="cat; echo after", timeout=3)
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read_end, write_end):
            os.close(fd)
    assert out.startswith("exit code: 0") and "after" in out


@pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")
def test_shell_timeout_kills_the_process_group(tmp_path: Path) -> None:
    # Unsandboxed: `$!` must be a host pid (the sandboxed case is in test_process_hardening).
    kit = Kit(tmp_path, sandbox=False)
    started = time.monotonic()
    out = kit("execute_shell_command", command="sleep 30 & echo $!; wait", timeout=1)
    elapsed = time.monotonic() - started
    match = re.search(r"^(\d+)$", out, re.MULTILINE)
    assert match, out
    child = int(match.group(1))
    try:
        assert out.startswith("timed out after 1s; the process group was killed")
        assert elapsed < 8
        assert wait_gone(child), f"background child {child} survived the timeout"
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)


@pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")
def test_keyboard_interrupt_kills_the_process_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids: list[int] = []

    def interrupted(self: subprocess.Popen[bytes], *args: object, **kwargs: object) -> None:
        pids.append(self.pid)
        raise KeyboardInterrupt

    monkeypatch.setattr(subprocess.Popen, "communicate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_process(["sleep", "30"], cwd=tmp_path, timeout=60, shell=False)
    try:
        assert wait_gone(pids[0]), "the child outlived Ctrl-C"
    finally:
        with contextlib.suppress(OSError):
            os.kill(pids[0], signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pids[0], 0)


def test_secrets_are_scrubbed_from_the_environment(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok")
    monkeypatch.setenv("FOO_SECRET", "shh")
    monkeypatch.setenv("lower_api_key", "k")
    monkeypatch.setenv("CACHE_DIR", "/tmp/cache")  # not secret-looking: kept
    monkeypatch.setenv("HOME", os.environ.get("HOME", "/root"))
    out = kit("execute_shell_command", command="env")
    names = {line.split("=", 1)[0] for line in out.splitlines() if "=" in line}
    assert {"ANTHROPIC_API_KEY", "MY_SERVICE_TOKEN", "FOO_SECRET", "lower_api_key"}.isdisjoint(
        names
    )
    assert {"PATH", "HOME", "CACHE_DIR"} <= names
    assert "sk-ant-secret" not in out
    assert "FOO_SECRET" not in scrubbed_env()

    py = kit("execute_python_code", code="import os; print(os.environ.get('FOO_SECRET'))")
    assert "None" in py


def test_execute_python_code_runs_in_workspace(kit: Kit) -> None:
    (kit.root / "helper.py").write_text("VALUE = 42\n")
    out = kit(
        "execute_python_code", code="import os, helper\nprint(os.getcwd())\nprint(helper.VALUE)"
    )
    assert out.startswith("exit code: 0")
    assert str(kit.root) in out and "42" in out
    assert sorted(p.name for p in kit.root.iterdir()) == ["helper.py"]  # no stray files

    out = kit("execute_python_code", code="raise SystemExit('boom')")
    assert out.startswith("exit code: 1") and "boom" in out
    out = kit("execute_python_code", code="1/0")
    assert "ZeroDivisionError" in out and "--- stderr ---" in out


def test_execute_python_code_times_out(tmp_path: Path) -> None:
    kit = Kit(tmp_path, shell_timeout=1)
    started = time.monotonic()
    out = kit("execute_python_code", code="import time\nprint('start', flush=True)\ntime.sleep(30)")
    assert out.startswith("timed out after 1s")
    assert "start" in out  # output produced before the kill is kept
    assert time.monotonic() - started < 8


def test_execute_python_file(kit: Kit) -> None:
    (kit.root / "scripts").mkdir()
    (kit.root / "scripts" / "run.py").write_text(
        "import os, sys\nprint(os.getcwd())\nprint(sys.argv[0])\nsys.exit(2)\n"
    )
    out = kit("execute_python_file", file_path="scripts/run.py")
    assert out.startswith("exit code: 2")
    assert str(kit.root) + "\n" in out  # cwd is the workspace, not scripts/
    assert "run.py" in out
    with pytest.raises(ToolError, match="'nope.py' does not exist"):
        kit("execute_python_file", file_path="nope.py")
    with pytest.raises(ToolError, match="'scripts' is a directory"):
        kit("execute_python_file", file_path="scripts")


def test_execute_python_uses_the_running_interpreter(kit: Kit) -> None:
    out = kit("execute_python_code", code="import sys; print(sys.executable)")
    assert os.path.realpath(sys.executable) in {
        os.path.realpath(line) for line in out.splitlines()[2:]
    }


def test_format_process_result() -> None:
    assert format_process_result(ProcessResult("", "", 0, False)) == "exit code: 0\n(no output)"
    assert format_process_result(ProcessResult("", "bad\n", 1, False)) == (
        "exit code: 1\n--- stderr ---\nbad"
    )
    assert "SIGKILL" in format_process_result(ProcessResult("", "", -9, False))
    timed = format_process_result(ProcessResult("partial", "", -9, True, timeout=2.5))
    assert timed.startswith("timed out after 2.5s; the process group was killed")
    assert "--- stdout ---\npartial" in timed
    clipped = format_process_result(
        ProcessResult("x" * 100 + "y" * 100, "", 0, False), max_chars=50
    )
    assert clipped.endswith("\n" + "x" * 25 + "\n[... 150 characters omitted ...]\n" + "y" * 25)
