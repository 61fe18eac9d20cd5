"""The file tools under attack: races, secret files, FIFOs, huge lines, kills, clipping.

Each test does what a hostile or careless model (or a process racing it) would do
and checks that nothing outside the workspace is read, written or deleted, that
no secret file is read, and that the answers stay exact and bounded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from nbagent import Agent
from nbagent.events import ToolCall
from nbagent.tools import files as files_module
from nbagent.tools.base import Tool, ToolError
from nbagent.tools.clip import clip_text
from nbagent.tools.files import DEFAULT_SECRET_FILE_PATTERNS, file_tools
from nbagent.tools.runner import ToolRunner
from nbagent.tools.workspace import Workspace, clean_stale_temp_files, temp_name
from tests.fake_anthropic import reply, tool_use
from tests.helpers import result_text, tool_results


class Files:
    """A workspace under tmp_path, a sibling directory outside it, and the file tools."""

    def __init__(self, tmp_path: Path, **options: object) -> None:
        self.root = tmp_path / "ws"
        self.outside = tmp_path / "outside"
        self.outside.mkdir()
        self.ws = Workspace(self.root)
        self.tools: dict[str, Tool] = {t.name: t for t in file_tools(self.ws, **options)}  # type: ignore[arg-type]

    def __call__(self, name: str, **arguments: object) -> str:
        output = self.tools[name].call(arguments)
        assert not output.is_error
        return output.text()

    def error(self, name: str, **arguments: object) -> str:
        with pytest.raises(ToolError) as info:
            self.tools[name].call(arguments)
        return str(info.value)


@pytest.fixture
def fs(tmp_path: Path) -> Files:
    return Files(tmp_path)


def run_briefly(fn, seconds: float = 30.0):  # type: ignore[no-untyped-def]
    """fn() in a thread, so that a call that would block forever fails the test instead."""
    box: list[object] = []
    worker = threading.Thread(target=lambda: box.append(_outcome(fn)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert box, f"the call was still blocked after {seconds} s"
    return box[0]


def _outcome(fn):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except Exception as exc:
        return exc


# --- a directory swapped for a symlink while the tools run --------------------

SWAPPER = textwrap.dedent(
    """
    import ctypes, os, sys
    ws, outside = sys.argv[1], sys.argv[2]
    os.chdir(ws)
    os.symlink(outside, "swap")  # "d" is a real directory, "swap" a link to outside
    libc = ctypes.CDLL(None, use_errno=True)
    exchange = getattr(libc, "renameat2", None)
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    print("ready", flush=True)
    while True:
        if exchange is not None:
            # Atomically trade places: "d" is the directory one moment, the link the next.
            exchange(AT_FDCWD, b"d", AT_FDCWD, b"swap", RENAME_EXCHANGE)
        else:
            try:
                os.rename("d", "d.real"); os.symlink(outside, "d")
                os.unlink("d"); os.rename("d.real", "d")
            except OSError:
                pass
    """
)


def test_a_symlink_swapped_in_during_calls_never_leads_outside(tmp_path: Path) -> None:
    fs = Files(tmp_path)
    inside = fs.root / "d"
    inside.mkdir()
    (inside / "f.txt").write_text("inside")
    (fs.outside / "f.txt").write_text("OUTSIDE")
    (fs.outside / "only-outside.txt").write_text("")
    rounds = 300
    for i in range(rounds):
        (inside / f"victim{i}.txt").write_text("inside victim")
        (fs.outside / f"victim{i}.txt").write_text("outside victim")
    for i in range(rounds // 3):
        (inside / f"tree{i}").mkdir()
        (fs.outside / f"tree{i}").mkdir()
    before = sorted(p.name for p in fs.outside.iterdir())

    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(fs.root), str(fs.outside)],
        stdout=subprocess.PIPE,
        text=True,
    )
    outcomes = {"ok": 0, "refused": 0}

    def attempt(name: str, **arguments: object) -> str | None:
        try:
            text = fs.tools[name].call(arguments).text()
        except ToolError:
            outcomes["refused"] += 1
            return None
        outcomes["ok"] += 1
        return text

    try:
        assert swapper.stdout is not None and swapper.stdout.readline().strip() == "ready"
        for i in range(rounds):
            read = attempt("read_file", file_path="d/f.txt")
            assert read in (None, "inside"), read
            lines = attempt("read_file_lines", file_path="d/f.txt", start_line=1, end_line=1)
            assert lines is None or "OUTSIDE" not in lines
            attempt("create_file", file_path=f"d/new{i}.txt", content="written")
            attempt("replace_string_in_file", file_path="d/f.txt", old_string="x", new_string="y")
            attempt("delete_file", file_path=f"d/victim{i}.txt")
            if i % 3 == 0:
                attempt("delete_directory", directory_path=f"d/tree{i // 3}")
            listing = attempt("list_directory", directory_path="d")
            assert listing is None or "only-outside" not in listing
    finally:
        swapper.kill()
        swapper.wait()

    assert sorted(p.name for p in fs.outside.iterdir()) == before  # nothing written or deleted
    assert (fs.outside / "f.txt").read_text() == "OUTSIDE"
    assert all(
        (fs.outside / f"victim{i}.txt").read_text() == "outside victim" for i in range(rounds)
    )
    # The race was really run: some calls went through the real directory.
    assert outcomes["ok"] > 0 and outcomes["refused"] > 0


def test_symlinks_inside_the_workspace_are_followed_step_by_step(fs: Files) -> None:
    (fs.root / "a" / "b").mkdir(parents=True)
    (fs.root / "a" / "b" / "f.txt").write_text("deep")
    (fs.root / "rel").symlink_to("a/b")
    (fs.root / "a" / "up").symlink_to("..")
    (fs.root / "abs").symlink_to(fs.root / "a")
    (fs.root / "chain").symlink_to("rel")
    assert fs("read_file", file_path="rel/f.txt") == "deep"
    assert fs("read_file", file_path="chain/f.txt") == "deep"
    assert fs("read_file", file_path="abs/b/f.txt") == "deep"
    assert fs("read_file", file_path="a/up/a/b/f.txt") == "deep"
    # ".." after a symlink is the parent of where the link led, as the kernel does it.
    assert fs("read_file", file_path="rel/../b/f.txt") == "deep"
    (fs.root / "a" / "out").symlink_to("../../outside")
    assert "symlink" in fs.error("read_file", file_path="a/out/x")
    (fs.root / "loop").symlink_to("loop")
    assert "symbolic links" in fs.error("read_file", file_path="loop")


# --- secret files ---------------------------------------------------------------

SECRET_NAMES = [
    ".env",
    ".env.local",
    "server.pem",
    "tls.key",
    "id_rsa",
    "id_ed25519",
    ".netrc",
    ".pgpass",
    "credentials.json",
    ".git-credentials",
    "sub/.npmrc",
    ".pypirc",
    ".aws/credentials",
    ".kube/config",
    "prod.ENV",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_files_are_never_read_written_or_deleted(fs: Files, name: str) -> None:
    path = fs.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("API_KEY=sk-live-0123456789\n")
    for tool_name, arguments in [
        ("read_file", {"file_path": name}),
        ("read_file_lines", {"file_path": name, "start_line": 1, "end_line": 1}),
        ("replace_string_in_file", {"file_path": name, "old_string": "sk", "new_string": "x"}),
        ("create_file", {"file_path": name, "content": "overwritten"}),
        ("delete_file", {"file_path": name}),
    ]:
        message = fs.error(tool_name, **arguments)
        assert "secret file" in message and "\n" not in message
        assert "sk-live" not in message
    assert path.read_text() == "API_KEY=sk-live-0123456789\n"
    # They may be seen to exist, but their content is not read.
    directory = str(Path(name).parent)
    assert path.name in fs("list_directory", directory_path=directory, show_hidden=True)
    info = fs("get_file_info", file_path=name)
    assert "not counted" in info and "sk-live" not in info


def test_a_link_to_a_secret_file_is_refused_too(fs: Files) -> None:
    (fs.root / ".env").write_text("TOKEN=abcdefgh12345678")
    (fs.root / "notes.txt").symlink_to(".env")
    assert "secret file" in fs.error("read_file", file_path="notes.txt")
    assert "secret file" in fs.error("create_file", file_path="notes.txt", content="x")


def test_the_secret_pattern_list_can_be_replaced(tmp_path: Path) -> None:
    fs = Files(tmp_path, secret_file_patterns=["*.secret"])
    (fs.root / ".env").write_text("MAX_TURNS=5")
    (fs.root / "db.secret").write_text("hunter2")
    assert fs("read_file", file_path=".env") == "MAX_TURNS=5"
    assert "secret file" in fs.error("read_file", file_path="db.secret")
    assert ".env" in DEFAULT_SECRET_FILE_PATTERNS


@pytest.mark.parametrize("mode", ["auto", "read-only", "ask"])
def test_secret_files_are_refused_in_every_permission_mode(
    fake_api, in_tmp: Path, mode: str
) -> None:
    (in_tmp / ".env").write_text("ANOTHER_SERVICE_KEY=file-secret-value-123\n")
    tools = file_tools(Workspace(in_tmp))
    fake_api.enqueue(reply(tool_use("read_file", {"file_path": ".env"})), "done")
    Agent(tools=tools, permission_mode=mode, approve=lambda call: "allow").run("show .env")
    result = tool_results(fake_api.last_body["messages"][-1])[0]
    assert result.get("is_error") and "secret file" in result_text(result)
    assert all("file-secret-value-123" not in json.dumps(r["body"]) for r in fake_api.requests)


# --- FIFOs, sockets, blocking -------------------------------------------------------


def test_a_fifo_is_refused_at_once(fs: Files) -> None:
    os.mkfifo(fs.root / "pipe")
    for name, arguments in [
        ("read_file", {"file_path": "pipe"}),
        ("read_file_lines", {"file_path": "pipe", "start_line": 1, "end_line": 2}),
        ("replace_string_in_file", {"file_path": "pipe", "old_string": "a", "new_string": "b"}),
        ("create_file", {"file_path": "pipe", "content": "x"}),
    ]:
        outcome = run_briefly(lambda n=name, a=arguments: fs.tools[n].call(a))
        assert isinstance(outcome, ToolError), (name, outcome)
        assert "named pipe (FIFO), not a regular file" in str(outcome)
    assert (fs.root / "pipe").is_fifo()  # create_file did not replace it
    assert "named pipe" in fs("get_file_info", file_path="pipe")


def test_a_socket_is_refused(fs: Files) -> None:
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(fs.root / "sock"))
        assert "socket, not a regular file" in fs.error("read_file", file_path="sock")
    finally:
        server.close()


def test_a_file_tool_that_blocks_answers_with_an_error_after_its_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = Files(tmp_path, timeout=0.2)
    (fs.root / "slow.txt").write_text("x")
    release = threading.Event()

    def hung_read(*args: object) -> None:  # a read on a dead network mount
        release.wait(60)
        raise AssertionError("not reached before the timeout")

    monkeypatch.setattr(files_module, "read_head", hung_read)
    try:
        message = fs.error("read_file", file_path="slow.txt")
    finally:
        release.set()
    assert "did not finish within 0.2 seconds" in message


# --- bounded memory ------------------------------------------------------------------

MEMORY_PROBE = textwrap.dedent(
    """
    import resource, sys
    from nbagent.tools.files import file_tools
    from nbagent.tools.workspace import Workspace
    tools = {t.name: t for t in file_tools(Workspace(sys.argv[1]))}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name, args in [
        ("read_file_lines", {"file_path": "huge.txt", "start_line": 1, "end_line": 5}),
        ("read_file", {"file_path": "huge.txt"}),
        ("get_file_info", {"file_path": "huge.txt"}),
    ]:
        out = tools[name].call(args)
        assert not out.is_error, out.text()
        assert len(out.text()) <= 30_000, len(out.text())
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(grown // 1024)
    """
)


def test_one_500_mb_line_is_read_in_bounded_memory(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    huge = root / "huge.txt"
    with huge.open("wb") as f:
        f.write(b"a" * (1 << 20))
        f.truncate(500 << 20)  # a sparse 500 MB line: no disk needed
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(root)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    grown_mb = int(done.stdout.strip())
    assert grown_mb < 200, f"the process grew by {grown_mb} MB"  # a generous ceiling


# --- one limit, exact continuation ------------------------------------------------------

HINT = re.compile(r'read_file_lines\(file_path="big\.txt", start_line=(\d+), end_line=(\d+)\)')


def test_a_long_file_is_read_whole_by_following_the_hints(fs: Files) -> None:
    lines = [f"{i:04d} " + "word " * (i % 17) for i in range(1, 5001)]
    content = "\n".join(lines) + "\n"
    (fs.root / "big.txt").write_text(content)
    limit = 30_000
    runner = ToolRunner(file_tools(fs.ws, max_output_chars=limit), max_output_chars=limit)

    def call(name: str, **arguments: object) -> str:
        output = runner.run_one(ToolCall("c", name, dict(arguments)))
        assert not output.is_error, output.text()
        text = output.text()
        assert len(text) <= limit and "output clipped" not in text  # nothing clipped it again
        return text

    first = call("read_file", file_path="big.txt")
    shown, notice = first.rsplit("\n[Clipped", 1)
    seen = shown.splitlines()
    assert seen == lines[: len(seen)]  # a contiguous run of whole lines 1..N
    n = len(seen)
    assert f"this shows lines 1-{n};" in notice and "5,000 lines" in notice
    match = HINT.search(notice)
    assert match is not None and int(match.group(1)) == n + 1

    calls = 1
    while match is not None:
        start, end = int(match.group(1)), int(match.group(2))
        page = call("read_file_lines", file_path="big.txt", start_line=start, end_line=end)
        calls += 1
        body = [line for line in page.splitlines()[1:] if not line.startswith("[Stopped")]
        numbers = [int(line.split(" | ", 1)[0]) for line in body]
        assert numbers == list(range(start, start + len(body)))
        seen += [line.split(" | ", 1)[1] for line in body]
        match = HINT.search(page)
        if match is None and len(seen) < len(lines):
            next_start = len(seen) + 1  # the range asked for was done: ask for the next one
            match = HINT.search(
                f'read_file_lines(file_path="big.txt", start_line={next_start}, '
                f"end_line={min(next_start + 999, len(lines))})"
            )
    assert seen == lines  # every line exactly once, in order, none lost
    assert calls < 40


def test_a_line_longer_than_the_limit_is_cut_with_its_size(tmp_path: Path) -> None:
    fs = Files(tmp_path, max_output_chars=2000)
    (fs.root / "wide.txt").write_text("x" * 10_000 + "\nshort\n")
    out = fs("read_file_lines", file_path="wide.txt", start_line=1, end_line=2)
    assert len(out) <= 2000
    assert "line 1 cut here: it is 10,001 bytes long" in out and "2 | short" in out
    out = fs("read_file", file_path="wide.txt")
    assert len(out) <= 2000 and "line 1 is longer than 2,000 characters" in out
    assert 'read_file_lines(file_path="wide.txt", start_line=2, end_line=2)' in out


def test_clip_text_stays_within_the_limit_and_says_what_it_left_out() -> None:
    text = "".join(f"line {i}\n" for i in range(1, 5001))
    for limit in (300, 1000, 30_000):
        clipped = clip_text(text, limit)
        assert len(clipped) <= limit
        assert clip_text(clipped, limit) == clipped  # a second clip at the limit is a no-op
    clipped = clip_text(text, 1000)
    match = re.search(
        r"output clipped: ([\d,]+) of 48,893 characters omitted \(lines (\d+)-", clipped
    )
    assert match is not None
    head, tail = clipped.split("[... output clipped")[0], clipped.rsplit("...]\n", 1)[1]
    assert int(match.group(1).replace(",", "")) == len(text) - len(head) - len(tail)
    assert head.endswith(f"line {int(match.group(2)) - 1}\n")  # cut at a whole line


# --- temp files -------------------------------------------------------------------------------

KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from nbagent.tools.files import file_tools
    from nbagent.tools.workspace import Workspace
    tools = {t.name: t for t in file_tools(Workspace(sys.argv[1]))}
    def stuck(fd):  # the temp file is written; the process dies before the rename
        print("writing", flush=True)
        time.sleep(600)
    os.fsync = stuck
    tools["create_file"].call({"file_path": "sub/big.csv", "content": "x" * 20_000_000})
    """
)


def test_a_writer_killed_mid_write_leaves_a_temp_file_the_next_workspace_removes(
    tmp_path: Path,
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        (left,) = [p for p in (root / "sub").iterdir()]
        assert left.name.startswith(".big.csv.nbagent-") and f"-{writer.pid}-" in left.name
        # A live writer's temp file is never touched.
        assert clean_stale_temp_files(root) == [] and left.exists()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    Workspace(root)
    assert list((root / "sub").iterdir()) == []


def test_only_temp_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "deep" / "er").mkdir(parents=True)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = int(gone.stdout)
    live = temp_name("mine.txt")  # this process
    assert re.fullmatch(rf"\.mine\.txt\.nbagent-{os.getpid()}-[0-9a-f]+\.tmp", live)
    names = {
        "live": root / live,
        "dead": root / "deep" / "er" / f".data.csv.nbagent-{dead}-0a1b2c3d.tmp",
        "not ours": root / f".data.csv.{dead}.tmp",
        "visible": root / f"data.nbagent-{dead}-0a1b2c3d.tmp",
    }
    for path in names.values():
        path.write_text("partial")
    removed = clean_stale_temp_files(root)
    assert removed == [str(names["dead"])]
    assert [k for k, p in names.items() if p.exists()] == ["live", "not ours", "visible"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(
    fs: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = fs.root / "keep.txt"
    path.write_text("original")

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    assert "No space left" in fs.error("create_file", file_path="keep.txt", content="new")
    assert "No space left" in fs.error(
        "replace_string_in_file", file_path="keep.txt", old_string="orig", new_string="X"
    )
    assert path.read_text() == "original"
    assert [p.name for p in fs.root.iterdir()] == ["keep.txt"]
