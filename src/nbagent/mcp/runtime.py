"""One background thread with its own asyncio loop, owning every MCP session.

The kernel's own event loop is busy while a cell runs, so MCP sessions cannot live on
it. Here each server has an owner task on the runtime's loop that enters the SDK's
`Client` (stdio or streamable HTTP), lists the tools once, then waits to be told to
stop; tool calls from any thread are submitted to the loop and waited for with a
deadline, so a server that crashes or hangs answers with an error in time and the
turn goes on.

Servers belong to the session, not to a tool call: they are started by the kernel
process itself, outside the per-call sandbox and reaper, and stopped by `close()`
(called by the session's close, `%unload_ext`, and at interpreter exit).

A stdio server gets exactly its declared environment plus PATH and HOME: the SDK
would add a few more inherited variables (LOGNAME, SHELL, TERM, USER), so the command
is started through a tiny trampoline that keeps only those names and then `exec`s the
server (so the server's PID is the process the SDK manages). Values travel in the
environment, never on a command line.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import json
import os
import sys
import tempfile
import threading
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import IO, Any, Literal

from .config import ExpandedServer

State = Literal["starting", "running", "failed", "crashed", "stopped"]

STOP_TIMEOUT = 10.0  # the SDK's stdio shutdown: stdin closed, 2 s, SIGTERM, 2 s, SIGKILL
_STDERR_TAIL = 4000  # bytes of a server's stderr read back to explain a failure
_STDERR_MAX = 1 << 20  # a chatty server's stderr file is emptied past this size

# Run as `python -I -S -c _TRAMPOLINE '["NAME", ...]' command args...`: keep only the
# named variables and become the server.
_TRAMPOLINE = (
    "import json,os,sys\n"
    "keep=set(json.loads(sys.argv[1]))\n"
    "env={k:v for k,v in os.environ.items() if k in keep}\n"
    "try:\n"
    "    os.execvpe(sys.argv[2],sys.argv[2:],env)\n"
    "except OSError as e:\n"
    "    sys.stderr.write('cannot run %r: %s\\n'%(sys.argv[2],e.strerror or e))\n"
    "    sys.exit(127)\n"
)


class McpCallError(Exception):
    """A call that could not get an answer; the message is one line for the model."""


@dataclass
class ServerHandle:
    """One server's connection, owned by the runtime's loop."""

    server: ExpandedServer
    state: State = "starting"
    detail: str = ""
    listed: list[Any] = field(default_factory=list)
    client: Any = None
    stop: asyncio.Event | None = None
    ready: asyncio.Event | None = None
    task: asyncio.Task[None] | None = None
    stderr: IO[bytes] | None = None

    @property
    def name(self) -> str:
        return self.server.config.name

    def stderr_tail(self) -> str:
        """The last line the server wrote on stderr (why it failed, usually)."""
        if self.stderr is None:
            return ""
        try:
            self.stderr.seek(0, os.SEEK_END)
            size = self.stderr.tell()
            self.stderr.seek(max(0, size - _STDERR_TAIL))
            text = self.stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else ""


class McpRuntime:
    """The thread, its loop, and the servers running on it."""

    def __init__(self) -> None:
        self.servers: dict[str, ServerHandle] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        _RUNTIMES.add(self)

    @property
    def running(self) -> bool:
        """The background thread is up (it starts with the first server)."""
        return self._thread is not None and self._thread.is_alive()

    # -- lifetime --------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=run, name="nbagent-mcp", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def start(self, servers: list[ExpandedServer], timeout: float) -> list[ServerHandle]:
        """Start `servers` together and wait up to `timeout` seconds for them to list
        their tools; a server not ready by then is stopped and marked failed."""
        loop = self._ensure_loop()
        handles = [ServerHandle(s) for s in servers]
        for handle in handles:
            old = self.servers.get(handle.name)
            if old is not None:
                self.stop([handle.name])
            self.servers[handle.name] = handle
        future = asyncio.run_coroutine_threadsafe(self._start_all(handles, timeout), loop)
        try:
            future.result(timeout + STOP_TIMEOUT)
        except concurrent.futures.TimeoutError:
            future.cancel()
        return handles

    def stop(self, names: list[str], timeout: float = STOP_TIMEOUT) -> None:
        """Stop these servers and wait (up to `timeout`) for their processes to end."""
        handles = [self.servers.pop(n) for n in names if n in self.servers]
        loop = self._loop
        if not handles or loop is None or loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self._stop_all(handles, timeout), loop)
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            future.result(timeout + 1)

    def close(self) -> None:
        """Stop every server, then the loop and its thread. Idempotent."""
        self.stop(list(self.servers))
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_TIMEOUT)
        if not loop.is_running():
            loop.close()

    # -- calls -----------------------------------------------------------------

    def call(self, server: str, tool: str, arguments: dict[str, Any], timeout: float) -> Any:
        """The server's `CallToolResult`, or McpCallError within about `timeout` seconds."""
        handle = self.servers.get(server)
        loop = self._loop
        if handle is None or loop is None:
            raise McpCallError(f"MCP server '{server}' is not running.")
        if handle.state != "running":
            raise McpCallError(_unavailable(handle))
        future = asyncio.run_coroutine_threadsafe(
            self._call(handle, tool, arguments, timeout), loop
        )
        try:
            return future.result(timeout + 2)  # the loop side enforces `timeout` itself
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise McpCallError(_no_answer(server, tool, timeout)) from None
        except BaseException:
            future.cancel()  # an interrupt (KeyboardInterrupt): stop waiting, cancel the call
            raise

    # -- on the loop -------------------------------------------------------------

    async def _start_all(self, handles: list[ServerHandle], timeout: float) -> None:
        for handle in handles:
            handle.stop = asyncio.Event()
            handle.ready = asyncio.Event()
            handle.task = asyncio.create_task(self._own(handle), name=f"mcp-{handle.name}")
        waits = [asyncio.create_task(h.ready.wait()) for h in handles if h.ready is not None]
        _, pending = await asyncio.wait(waits, timeout=timeout or None)
        for wait in pending:
            wait.cancel()
        for handle in handles:
            if handle.ready is not None and not handle.ready.is_set():
                handle.state = "failed"
                handle.detail = f"it gave no answer within {timeout:g} s (mcp_startup_timeout)"
                if handle.task is not None:
                    handle.task.cancel()  # the SDK's shielded shutdown ends the process

    async def _stop_all(self, handles: list[ServerHandle], timeout: float) -> None:
        tasks = []
        for handle in handles:
            if handle.stop is not None:
                handle.stop.set()
            if handle.task is not None and not handle.task.done():
                tasks.append(handle.task)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
        for handle in handles:
            if handle.state in ("running", "starting"):
                handle.state = "stopped"
            if handle.stderr is not None:
                handle.stderr.close()

    async def _own(self, handle: ServerHandle) -> None:
        """Connect, list the tools, then hold the connection until told to stop."""
        try:
            async with self._client(handle) as client:
                handle.listed = await _list_tools(client)
                handle.client = client
                handle.state = "running"
                if handle.ready is not None:
                    handle.ready.set()
                if handle.stop is not None:
                    await handle.stop.wait()
        except asyncio.CancelledError:
            if handle.state == "starting":
                handle.state = "failed"
            raise
        except BaseException as exc:  # noqa: BLE001 - any failure is the server's state
            reason = _explain(exc)
            tail = handle.stderr_tail()
            if tail and tail not in reason:
                reason = f"{reason} (stderr: {tail})"
            if handle.state == "starting":
                handle.state, handle.detail = "failed", reason
            elif handle.state == "running":
                handle.state, handle.detail = "crashed", reason
        finally:
            handle.client = None
            if handle.ready is not None:
                handle.ready.set()

    @contextlib.asynccontextmanager
    async def _client(self, handle: ServerHandle) -> AsyncIterator[Any]:
        from mcp import Client
        from mcp_types import Implementation, LoggingMessageNotificationParams

        from .._version import __version__

        async def quiet(params: LoggingMessageNotificationParams) -> None:
            return None  # server log messages are not shown

        transport = self._transport(handle)
        client = Client(
            transport,
            cache=None,
            logging_callback=quiet,
            client_info=Implementation(name="nbagent", version=__version__),
        )
        async with client:
            yield client

    def _transport(self, handle: ServerHandle) -> Any:
        server = handle.server
        if server.config.transport == "http":
            return _http_transport(server.url, server.headers)
        from mcp.client.stdio import StdioServerParameters, stdio_client

        handle.stderr = tempfile.TemporaryFile(mode="a+b")  # noqa: SIM115 - lives with the server
        command, args, env = stdio_command(server)
        params = StdioServerParameters(command=command, args=args, env=env, cwd=server.cwd)
        return stdio_client(params, errlog=handle.stderr)  # type: ignore[arg-type]

    async def _call(
        self, handle: ServerHandle, tool: str, arguments: dict[str, Any], timeout: float
    ) -> Any:
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        client = handle.client
        if client is None or handle.state != "running":
            raise McpCallError(_unavailable(handle))
        _trim(handle.stderr)
        try:
            async with asyncio.timeout(timeout):
                return await client.call_tool(tool, arguments, read_timeout_seconds=timeout)
        except TimeoutError:
            raise McpCallError(_no_answer(handle.name, tool, timeout)) from None
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise McpCallError(_no_answer(handle.name, tool, timeout)) from None
            if exc.code == CONNECTION_CLOSED:
                self._crashed(handle, "the connection closed during a call to " + repr(tool))
                raise McpCallError(_unavailable(handle)) from None
            raise McpCallError(
                f"MCP server '{handle.name}' answered the call with an error: {exc.message}"
            ) from None
        except Exception as exc:
            if handle.state == "running" and _is_disconnect(exc):
                self._crashed(handle, _explain(exc))
                raise McpCallError(_unavailable(handle)) from None
            raise McpCallError(f"MCP server '{handle.name}': {_explain(exc)}") from None

    def _crashed(self, handle: ServerHandle, reason: str) -> None:
        tail = handle.stderr_tail()
        handle.state = "crashed"
        handle.detail = f"{reason} (stderr: {tail})" if tail else reason
        if handle.stop is not None:
            handle.stop.set()  # the owner task leaves the client and reaps the process


def stdio_command(server: ExpandedServer) -> tuple[str, list[str], dict[str, str]]:
    """(command, args, env) for the SDK: the server through the trampoline on POSIX."""
    env = {k: v for k in ("PATH", "HOME") if (v := os.environ.get(k)) is not None}
    env.update(server.env)
    if sys.platform == "win32":  # no exec there; the SDK's inherited defaults apply
        return server.command, list(server.args), env
    names = json.dumps(sorted(env))
    return (
        sys.executable,
        ["-I", "-S", "-c", _TRAMPOLINE, names, server.command, *server.args],
        env,
    )


@contextlib.asynccontextmanager
async def _http_transport(url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    timeout = httpx2.Timeout(30.0, read=300.0)  # calls have their own, shorter deadline
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        streamable_http_client(url, http_client=http) as streams,
    ):
        yield streams


async def _list_tools(client: Any) -> list[Any]:
    tools: list[Any] = []
    cursor: str | None = None
    for _ in range(100):  # a server that pages forever is cut off
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _trim(stderr: IO[bytes] | None) -> None:
    """Empty a server's stderr file past a size (it is opened for appending)."""
    if stderr is None:
        return
    with contextlib.suppress(OSError, ValueError):
        if os.fstat(stderr.fileno()).st_size > _STDERR_MAX:
            stderr.truncate(0)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _explain(exc: BaseException) -> str:
    exc = _leaf(exc)
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, FileNotFoundError | PermissionError) and exc.filename:
        text = f"cannot run {exc.filename}: {exc.strerror}"
    if len(text) > 300:
        text = text[:297] + "..."
    return text


def _is_disconnect(exc: BaseException) -> bool:
    import anyio

    leaf = _leaf(exc)
    return isinstance(
        leaf, anyio.ClosedResourceError | anyio.BrokenResourceError | anyio.EndOfStream
    ) or type(leaf).__name__ in ("ConnectError", "RemoteProtocolError", "ReadError")


def _unavailable(handle: ServerHandle) -> str:
    what = {"crashed": "stopped working", "failed": "did not start", "stopped": "was stopped"}
    text = f"MCP server '{handle.name}' {what.get(handle.state, 'is not running')}"
    if handle.detail:
        text += f": {handle.detail}"
    return text + "; its tools are unavailable."


def _no_answer(server: str, tool: str, timeout: float) -> str:
    return (
        f"MCP server '{server}' did not answer the call to '{tool}' within {timeout:g} s "
        "(mcp_call_timeout); the call was cancelled."
    )


_RUNTIMES: weakref.WeakSet[McpRuntime] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """At interpreter exit (kernel shutdown), no server outlives the process."""
    for runtime in list(_RUNTIMES):
        with contextlib.suppress(Exception):
            runtime.close()
