"""MCP servers as tool sources: two real servers (stdio and streamable HTTP), written
with the `mcp` SDK's server side, started as users start them and driven through a
real `Agent` against the fake Messages API."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbagent import Agent
from nbagent.config import Settings, resolve
from nbagent.events import Notice
from nbagent.mcp import McpManager, load_servers, tool_name
from nbagent.mcp.tools import make_tools, result_to_output
from tests.fake_anthropic import reply, tool_use
from tests.helpers import assert_valid_history, result_text, tool_results

SERVERS = Path(__file__).parent / "mcp_servers"
STDIO_SERVER = str(SERVERS / "stdio_server.py")
HTTP_SERVER = str(SERVERS / "http_server.py")
STARTUP = 150.0  # generous: the machine may be busy; the tests do not measure speed
PNG_B64 = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e7c2"
        "0fe30000000049454e44ae426082"
    )
).decode()

pytestmark = pytest.mark.timeout(600)


def settings_for(servers: dict[str, Any] | None, cwd: Path, **options: Any) -> Settings:
    explicit = {"mcp_servers": servers, "mcp_startup_timeout": STARTUP, **options}
    return resolve(explicit, {}, cwd=cwd, env={})


def stdio_entry(notes: Path, *extra_args: str, **extra: Any) -> dict[str, Any]:
    """The server as a user configures it: a command, its arguments, its environment.
    PYTHONCOERCECLOCALE=0 keeps Python from adding LC_CTYPE to its own environment."""
    return {
        "command": sys.executable,
        "args": [STDIO_SERVER, *extra_args],
        "env": {
            "NOTES_FILE": str(notes),
            "PYTHONCOERCECLOCALE": "0",
            "API_TOKEN": "tok-9f8e7d6c5b4a",
        },
        **extra,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HttpServer:
    """`python http_server.py PORT`, as a user runs it; stopped by its PID."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, HTTP_SERVER, str(self.port)],
            cwd=SERVERS,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the HTTP MCP server did not start") from None
                time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, 9)
        self.process.wait(30)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp")


@pytest.fixture(scope="module")
def http_server() -> Iterator[HttpServer]:
    server = HttpServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def running(workdir: Path, http_server: HttpServer) -> Iterator[tuple[McpManager, list[Any]]]:
    """One stdio and one HTTP server, started once for the tests that only call them."""
    os.environ["NBAGENT_TEST_TEAM"] = "blue"
    servers = {
        "local": stdio_entry(workdir / "notes.txt"),
        "web": {
            "type": "http",
            "url": http_server.url,
            "headers": {"X-Team": "${NBAGENT_TEST_TEAM}"},
        },
    }
    manager = McpManager(cwd=workdir)
    notices: list[Notice] = []
    tools = manager.tools_for_turn(
        settings_for(servers, workdir, mcp_call_timeout=5), may_start=None, emit=notices.append
    )
    assert notices == [], notices
    yield manager, tools
    manager.close()
    os.environ.pop("NBAGENT_TEST_TEAM", None)


def agent_with(tools: list[Any], **kwargs: Any) -> Agent:
    agent = Agent(tools=[], **kwargs)
    agent.add_tools(tools)
    return agent


def results_of(fake_api: Any, request: int = -1) -> list[dict[str, Any]]:
    return tool_results(fake_api.requests[request]["body"]["messages"][-1])


# -- both servers through an Agent -----------------------------------------------------


def test_tools_of_both_servers_join_the_agent_sorted_with_their_categories(running):
    _, tools = running
    names = [t.name for t in tools]
    assert names == sorted(names)
    categories = {t.name: t.category for t in tools}
    assert categories["mcp__local__echo"] == "read"  # readOnlyHint
    assert categories["mcp__local__save_note"] == "write"  # destructiveHint false
    assert categories["mcp__local__wipe_notes"] == "destructive"  # unannotated
    assert categories["mcp__web__lookup"] == "read"
    assert categories["mcp__web__delete_record"] == "destructive"
    echo = next(t for t in tools if t.name == "mcp__local__echo")
    assert echo.to_param()["input_schema"]["properties"]["text"]["type"] == "string"
    assert "MCP server 'local'" in echo.to_param()["description"]


def test_an_agent_calls_both_servers_and_gets_text_and_images(running, fake_api, in_tmp):
    _, tools = running
    fake_api.enqueue(
        reply(
            tool_use("mcp__local__echo", {"text": "hello"}),
            tool_use("mcp__web__lookup", {"key": "alpha"}),
            tool_use("mcp__web__whoami", {}),
            tool_use("mcp__local__chart", {}),
            tool_use("mcp__web__snapshot", {}),
            tool_use("mcp__local__echo", {"text": 3}),
        ),
        "done",
    )
    agent = agent_with(tools, permission_mode="auto")
    assert agent.run("use the servers").text == "done"
    blocks = results_of(fake_api)
    assert result_text(blocks[0]) == "echo: hello"
    assert result_text(blocks[1]) == "1"
    assert result_text(blocks[2]) == "blue", "headers reach the HTTP server, ${VAR} expanded"
    for image_result in (blocks[3], blocks[4]):
        (image,) = [b for b in image_result["content"] if b["type"] == "image"]
        assert image["source"] == {"type": "base64", "media_type": "image/png", "data": PNG_B64}
    assert blocks[5]["is_error"] and "Invalid input" in result_text(blocks[5])
    assert_valid_history(agent.messages)


def test_a_stdio_server_gets_exactly_its_declared_environment_plus_path_and_home(running):
    _, tools = running
    env_names = next(t for t in tools if t.name == "mcp__local__env_names")
    names = env_names.call({}).text().split(",")
    assert sorted(names) == ["API_TOKEN", "HOME", "NOTES_FILE", "PATH", "PYTHONCOERCECLOCALE"]


def test_ask_mode_asks_for_write_and_destructive_tools_only(running, fake_api, in_tmp, workdir):
    _, tools = running
    notes = workdir / "notes.txt"
    notes.unlink(missing_ok=True)
    asked: list[str] = []

    def approve(call: Any) -> str:
        asked.append(call.name)
        return "allow" if call.name == "mcp__local__save_note" else "deny"

    fake_api.enqueue(
        reply(
            tool_use("mcp__local__echo", {"text": "x"}),
            tool_use("mcp__local__save_note", {"note": "kept"}),
            tool_use("mcp__local__wipe_notes", {}),
            tool_use("mcp__web__delete_record", {"key": "beta"}),
            tool_use("mcp__web__lookup", {"key": "beta"}),
        ),
        "ok",
    )
    agent = agent_with(tools, permission_mode="ask", approve=approve)
    agent.run("go")
    assert asked == ["mcp__local__save_note", "mcp__local__wipe_notes", "mcp__web__delete_record"]
    blocks = results_of(fake_api)
    assert not blocks[0].get("is_error")
    assert result_text(blocks[1]) == "saved"
    assert blocks[2]["is_error"] and blocks[3]["is_error"]
    assert result_text(blocks[4]) == "2", "the denied delete did not reach the server"
    assert notes.read_text() == "kept\n", "the denied wipe did not run"


def test_read_only_mode_runs_read_tools_and_refuses_the_rest(running, fake_api, in_tmp, workdir):
    _, tools = running
    notes = workdir / "notes.txt"
    notes.write_text("before\n")
    fake_api.enqueue(
        reply(
            tool_use("mcp__web__lookup", {"key": "alpha"}),
            tool_use("mcp__local__save_note", {"note": "no"}),
            tool_use("mcp__web__delete_record", {"key": "alpha"}),
        ),
        "ok",
    )
    agent_with(tools, permission_mode="read-only").run("go")
    blocks = results_of(fake_api)
    assert result_text(blocks[0]) == "1"
    assert blocks[1]["is_error"] and "read-only" in result_text(blocks[1])
    assert blocks[2]["is_error"] and "read-only" in result_text(blocks[2])
    assert notes.read_text() == "before\n"


def test_a_call_that_never_answers_ends_with_an_error_and_the_server_stays_up(running):
    manager, tools = running
    by_name = {t.name: t for t in tools}
    for hang, check in (
        ("mcp__local__hang", ("mcp__local__echo", {"text": "still here"})),
        ("mcp__web__hang", ("mcp__web__lookup", {"key": "alpha"})),
    ):
        output = by_name[hang].call({})
        assert output.is_error and "did not answer" in output.text() and "5 s" in output.text()
        after = by_name[check[0]].call(check[1])
        assert not after.is_error
    assert {s.name: s.state for s in manager.status()} == {"local": "running", "web": "running"}
    assert "mcp__local__echo  [read]" in manager.status_text()


def test_later_turns_reuse_the_running_servers_and_the_same_tools(running, workdir, http_server):
    manager, tools = running
    pid_tool = next(t for t in tools if t.name == "mcp__local__pid")
    pid = pid_tool.call({}).text()
    servers = {
        "local": stdio_entry(workdir / "notes.txt"),
        "web": {
            "type": "http",
            "url": http_server.url,
            "headers": {"X-Team": "${NBAGENT_TEST_TEAM}"},
        },
    }
    again = manager.tools_for_turn(
        settings_for(servers, workdir, mcp_call_timeout=5), may_start=None, emit=print
    )
    assert [t.name for t in again] == [t.name for t in tools]
    assert all(a is b for a, b in zip(again, tools, strict=True))
    assert pid_tool.call({}).text() == pid
    assert "tok-9f8e7d6c5b4a" in manager.secret_values()


# -- failures: crash, hang at start, close ------------------------------------------------


def test_servers_that_crash_mid_call_end_the_call_with_an_error(tmp_path):
    http = HttpServer()
    manager = McpManager(cwd=tmp_path)
    try:
        servers = {"local": stdio_entry(tmp_path / "n.txt"), "web": {"url": http.url}}
        tools = manager.tools_for_turn(
            settings_for(servers, tmp_path, mcp_call_timeout=60), may_start=None, emit=print
        )
        by_name = {t.name: t for t in tools}
        for server in ("local", "web"):
            output = by_name[f"mcp__{server}__crash"].call({})
            assert output.is_error and "stopped working" in output.text()
            again = by_name[f"mcp__{server}__echo" if server == "local" else "mcp__web__lookup"]
            follow_up = again.call({"text": "x"} if server == "local" else {"key": "alpha"})
            assert follow_up.is_error and "unavailable" in follow_up.text()
        assert {s.state for s in manager.status()} == {"crashed"}
    finally:
        manager.close()
        http.stop()


def test_a_server_that_never_starts_gives_one_notice_and_servers_stop_at_close(tmp_path):
    marker = f"nbagent-hang-{os.getpid()}-{time.monotonic_ns()}"
    servers = {
        "good": stdio_entry(tmp_path / "n.txt"),
        "stuck": stdio_entry(tmp_path / "n.txt", "--hang-on-start", marker),
    }
    manager = McpManager(cwd=tmp_path)
    notices: list[Notice] = []
    settings = settings_for({"good": servers["good"]}, tmp_path)
    good_first = manager.tools_for_turn(settings, may_start=None, emit=notices.append)
    assert notices == [] and {t.server for t in good_first} == {"good"}
    # The stuck one, with a short start-up timeout, on its own manager.
    stuck_manager = McpManager(cwd=tmp_path)
    short = settings_for({"stuck": servers["stuck"]}, tmp_path, mcp_startup_timeout=3)
    tools = stuck_manager.tools_for_turn(short, may_start=None, emit=notices.append)
    assert tools == []
    (notice,) = notices
    assert "'stuck' did not start" in notice.text and "3 s" in notice.text
    assert "\n" not in notice.text
    pid = int(next(t for t in good_first if t.name == "mcp__good__pid").call({}).text())
    assert _alive(pid)
    threads = [m._runtime._thread for m in (manager, stuck_manager) if m._runtime is not None]
    assert len(threads) == 2
    manager.close()
    stuck_manager.close()
    assert not _alive(pid), "the stdio server is stopped at close"
    assert not _processes_with(marker), "the server that never started is stopped too"
    assert not any(t is not None and t.is_alive() for t in threads), "the runtime's thread ended"
    output = good_first[0].call({})
    assert output.is_error


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


# -- who may start what -----------------------------------------------------------------


def _project_file(folder: Path, entry: dict[str, Any]) -> None:
    import json

    (folder / ".mcp.json").write_text(json.dumps({"mcpServers": {"cloned": entry}}))


def _touching_entry(folder: Path) -> dict[str, Any]:
    """A command that leaves a file behind if it ever runs."""
    return {
        "command": sys.executable,
        "args": ["-c", f"open({str(folder / 'STARTED')!r}, 'w').close()"],
    }


@pytest.mark.parametrize("mode", ["read-only", "auto", "ask"])
def test_a_project_mcp_json_never_runs_without_the_users_permission(tmp_path, mode):
    _project_file(tmp_path, _touching_entry(tmp_path))
    manager = McpManager(cwd=tmp_path)
    notices: list[Notice] = []
    asked: list[str] = []

    def refuse(summary: str) -> bool:
        asked.append(summary)
        return False

    settings = settings_for(None, tmp_path, permission_mode=mode)
    for may_start in (None, refuse, refuse):
        assert manager.tools_for_turn(settings, may_start=may_start, emit=notices.append) == []
    assert not (tmp_path / "STARTED").exists()
    assert manager._runtime is None, "no thread, no process"
    if mode == "read-only":
        assert asked == []
        assert [n.text for n in notices] == [
            "MCP server 'cloned' was not started: the session is read-only."
        ]
    else:
        assert len(asked) == 1, "asked once per configuration"
        assert "from " + str(tmp_path / ".mcp.json") in asked[0] and "STARTED" in asked[0]
        assert "%agent mcp allow cloned" in notices[0].text
        assert "you did not allow it" in notices[1].text
    assert manager.status()[0].state == "not started"


def test_an_allowed_project_server_starts_and_a_changed_one_is_asked_again(tmp_path):
    entry = stdio_entry(tmp_path / "n.txt")
    _project_file(tmp_path, entry)
    manager = McpManager(cwd=tmp_path)
    asked: list[str] = []

    def allow(summary: str) -> bool:
        asked.append(summary)
        return True

    try:
        settings = settings_for(None, tmp_path)
        tools = manager.tools_for_turn(settings, may_start=allow, emit=print)
        assert "mcp__cloned__echo" in [t.name for t in tools]
        assert manager.tools_for_turn(settings, may_start=allow, emit=print) == tools
        assert len(asked) == 1
        assert "NOTES_FILE" in asked[0] and "tok-9f8e7d6c5b4a" not in asked[0]
        _project_file(tmp_path, {**_touching_entry(tmp_path)})
        manager.tools_for_turn(settings, may_start=lambda s: asked.append(s) or False, emit=print)
        assert len(asked) == 2 and not (tmp_path / "STARTED").exists()
    finally:
        manager.close()


def test_ask_mode_asks_once_for_a_setting_server(tmp_path):
    manager = McpManager(cwd=tmp_path)
    asked: list[str] = []
    settings = settings_for({"s": _touching_entry(tmp_path)}, tmp_path, permission_mode="ask")
    for _ in range(2):
        manager.tools_for_turn(settings, may_start=lambda s: asked.append(s) or False, emit=print)
    assert len(asked) == 1 and "mcp_servers setting" in asked[0]
    assert not (tmp_path / "STARTED").exists()


def test_nothing_of_the_sdk_is_imported_or_started_without_servers(tmp_path):
    code = (
        "import sys, threading\n"
        "from pathlib import Path\n"
        "from nbagent.mcp import McpManager\n"
        "from nbagent.config import resolve\n"
        "m = McpManager(cwd=Path(sys.argv[1]))\n"
        "assert m.tools_for_turn(resolve({}, {}, env={}), may_start=None, emit=print) == []\n"
        "assert 'mcp' not in sys.modules, 'the SDK was imported'\n"
        "assert [t.name for t in threading.enumerate()] == ['MainThread']\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=tmp_path)


# -- config, names, categories and results (no server) -------------------------------------


def test_config_merges_the_setting_over_the_project_file(tmp_path):
    (tmp_path / ".mcp.json").write_text(
        '{"mcpServers": {"db": {"command": "evil"}, "docs": {"type": "http", "url": "http://x"},'
        ' "old": {"type": "sse", "url": "http://y"}, "off": {"command": "x", "disabled": true}}}'
    )
    loaded = load_servers({"db": {"command": "uvx", "args": ["db-server"]}}, tmp_path)
    by_name = {s.name: s for s in loaded.servers}
    assert sorted(by_name) == ["db", "docs"]
    assert by_name["db"].command == "uvx" and not by_name["db"].from_project_file
    assert by_name["docs"].transport == "http" and by_name["docs"].from_project_file
    assert len(loaded.problems) == 1 and "SSE" in loaded.problems[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bad = load_servers(
        {"mcpServers": {"x": {"args": []}, "y": {"command": "c", "category": "rw"}}}, elsewhere
    )
    assert bad.servers == [] and len(bad.problems) == 2


def test_tool_names_follow_the_api_rule_and_long_ones_get_a_hash():
    import re

    assert tool_name("db", "query") == "mcp__db__query"
    assert tool_name("my server", "get.rows") == "mcp__my_server__get_rows"
    long = tool_name("s" * 100, "t" * 100)
    assert len(long) == 128 and re.fullmatch(r"[a-zA-Z0-9_-]{1,128}", long)
    assert long != tool_name("s" * 100, "t" * 99 + "u"), "the hash tells long names apart"


def _listing(name: str, annotations: dict[str, Any] | None = None) -> Any:
    import mcp_types

    return mcp_types.Tool(
        name=name,
        description=f"{name} tool",
        input_schema={"type": "object", "properties": {"a": {"type": "integer"}}},
        annotations=mcp_types.ToolAnnotations(**annotations) if annotations else None,
    )


def test_categories_come_from_annotations_unless_the_config_overrides_them():
    listed = [
        _listing("r", {"read_only_hint": True}),
        _listing("w", {"destructive_hint": False}),
        _listing("d", {"destructive_hint": True}),
        _listing("plain"),
        _listing("a.b"),
        _listing("a_b"),
    ]
    tools, problems = make_tools("s", listed, override=lambda _: None, call=lambda *_: None)  # type: ignore[arg-type,return-value]
    assert problems == []
    got = {t.remote_name: t.category for t in tools}
    assert got == {
        "r": "read",
        "w": "write",
        "d": "destructive",
        "plain": "destructive",
        "a.b": "destructive",
        "a_b": "destructive",
    }
    assert len({t.name for t in tools}) == 6, "names that sanitise alike are told apart"
    overridden, _ = make_tools(
        "s",
        listed,
        override={"plain": "read", "r": "write"}.get,
        call=lambda *_: None,  # type: ignore[arg-type,return-value]
    )
    got = {t.remote_name: t.category for t in overridden}
    assert got["plain"] == "read" and got["r"] == "write"
    assert next(t for t in overridden if t.remote_name == "plain").read_only


def test_results_become_content_blocks():
    import mcp_types as t

    pdf = base64.b64encode(b"%PDF-1.4 fake").decode()
    result = t.CallToolResult(
        content=[
            t.TextContent(type="text", text="rows: 2"),
            t.ImageContent(type="image", data=PNG_B64, mime_type="image/png"),
            t.EmbeddedResource(
                type="resource",
                resource=t.TextResourceContents(
                    uri="file:///a.csv", mime_type="text/csv", text="a,b"
                ),
            ),
            t.EmbeddedResource(
                type="resource",
                resource=t.BlobResourceContents(
                    uri="file:///r.pdf", mime_type="application/pdf", blob=pdf
                ),
            ),
            t.ResourceLink(type="resource_link", uri="file:///big.parquet", name="big"),
            t.AudioContent(type="audio", data="AAAA", mime_type="audio/wav"),
        ],
        is_error=False,
    )
    blocks = result_to_output(result).content
    assert isinstance(blocks, list)
    kinds = [b["type"] for b in blocks]
    assert kinds == ["text", "image", "text", "text", "document", "text", "text"]
    assert blocks[2]["text"] == "[resource file:///a.csv]\na,b"
    assert blocks[4]["source"]["media_type"] == "application/pdf"
    assert "big" in blocks[5]["text"] and "audio" in blocks[6]["text"]
    structured = t.CallToolResult(content=[], structured_content={"n": 1}, is_error=True)
    output = result_to_output(structured)
    assert output.is_error and '"n": 1' in output.text()
