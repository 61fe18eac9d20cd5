"""The per-call wrapper process: run one tool command, keep bounded output, leave nothing behind.

`process.run_process` starts it as `python -I -S reaper.py TIMEOUT LIMIT -- COMMAND...`
(inside the sandbox when there is one). It

- makes itself a child subreaper (Linux `prctl(PR_SET_CHILD_SUBREAPER)`), so every
  process the command starts stays its descendant, even after `nohup`, `setsid` or
  a double fork. This must never be set in the kernel process itself: the kernel
  would then inherit every orphan of every library it runs;
- reads the command's stdout and stderr as they come into head-and-tail buffers of
  a fixed size, so its memory stays flat whatever the command prints;
- when the command's main process exits, its timeout expires, it receives SIGTERM,
  or its parent dies, kills every descendant still running, so a tool call returns
  as soon as its command is done and leaves no process behind;
- writes one report on its stdout, a Python literal (exit code, timeout, processes
  killed, the kept output and how much was omitted).

It starts on every tool call, so it imports little (no json, subprocess or
selectors: they would double its start-up time), and nothing from the package:
it runs with -I -S, which keeps the user's PYTHON* variables and site-packages out.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

TYPE_CHECKING = False  # not `typing`: one import less at every start

if TYPE_CHECKING:
    from collections.abc import Callable

# Continuation bytes of UTF-8 (0b10xxxxxx): every other byte starts a character.
_CONTINUATION = bytes(range(0x80, 0xC0))
_READ_SIZE = 1 << 16
# After the kill, how long to wait for the pipes to reach end of file. A process
# that got hold of a pipe outside the tree (passed over a socket) may never close it.
_DRAIN_SECONDS = 2.0
# Upper bound on the kill loop, which a fork bomb keeps busy.
_KILL_SECONDS = 5.0

_XFSZ = [signal.SIGXFSZ] if hasattr(signal, "SIGXFSZ") else []
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


class HeadTail:
    """Keeps the first and last `limit // 2` bytes of a stream and counts what falls between."""

    def __init__(self, limit: int) -> None:
        self.head_limit = max(limit, 0) // 2
        self.tail_limit = max(limit, 0) - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.omitted_bytes = 0
        self.omitted_chars = 0
        self.omitted_lines = 0

    def write(self, data: bytes) -> None:
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        if len(data) >= self.tail_limit:
            # The whole old tail and the front of `data` fall out.
            self._omit(bytes(self.tail))
            cut = len(data) - self.tail_limit
            self._omit(data[:cut])
            self.tail = bytearray(data[cut:])
            return
        self.tail += data
        excess = len(self.tail) - self.tail_limit
        if excess > 0:
            self._omit(bytes(self.tail[:excess]))
            del self.tail[:excess]

    def _omit(self, data: bytes) -> None:
        if not data:
            return
        self.omitted_bytes += len(data)
        # Characters are the bytes that start one; exact for valid UTF-8.
        self.omitted_chars += len(data.translate(None, _CONTINUATION))
        self.omitted_lines += data.count(b"\n")

    def report(self) -> dict[str, object]:
        """The kept text (head and tail decoded apart when something was omitted) and counts."""
        if not self.omitted_bytes:
            text = bytes(self.head + self.tail).decode("utf-8", errors="replace")
            return {"head": text, "tail": "", "omitted_chars": 0, "omitted_lines": 0}
        head, tail = bytes(self.head), bytes(self.tail)
        # Don't show half a character at either side of the cut.
        whole_head = _without_partial_end(head)
        skip = 0
        while skip < min(3, len(tail)) and 0x80 <= tail[skip] < 0xC0:
            skip += 1
        partial = head[len(whole_head) :] + tail[:skip]
        return {
            "head": whole_head.decode("utf-8", errors="replace"),
            "tail": tail[skip:].decode("utf-8", errors="replace"),
            "omitted_chars": self.omitted_chars + (1 if partial else 0),
            "omitted_lines": self.omitted_lines,
        }


def _without_partial_end(data: bytes) -> bytes:
    """`data` without a UTF-8 sequence cut short at its end."""
    i = len(data)
    trailing = 0
    while i > 0 and trailing < 3 and 0x80 <= data[i - 1] < 0xC0:
        i -= 1
        trailing += 1
    if i == 0 or data[i - 1] < 0xC0:
        return data
    lead = data[i - 1]
    needed = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    return data if trailing + 1 >= needed else data[: i - 1]


class Stopped(BaseException):
    """SIGTERM (the caller's interrupt) or the parent's death: clean up and leave."""


def _stop(signum: int, frame: object) -> None:
    raise Stopped


# --- the process tree -----------------------------------------------------------


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _live_descendants(root: int) -> list[int]:
    """Pids below `root` that have not exited yet, from one scan of /proc."""
    children: dict[int, list[int]] = {}
    running: set[int] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: parse after the last ")".
        fields = stat[stat.rfind(b")") + 2 :].split()
        pid, state, ppid = int(name), fields[0], int(fields[1])
        children.setdefault(ppid, []).append(pid)
        if state not in (b"Z", b"X"):
            running.add(pid)
    found: list[int] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return [pid for pid in found if pid in running]


def kill_tree(main_pid: int | None, subreaper: bool, reap: Callable[[], None]) -> set[int]:
    """SIGKILL every process still running below us, until none is left; the pids killed.

    As a subreaper we see every descendant, whatever session it moved to. Without
    one (not Linux) the command's own process group is all we can reach.
    """
    if not subreaper:
        if main_pid is not None:
            _signal_group(main_pid)
        reap()
        return set()
    killed: set[int] = set()
    deadline = time.monotonic() + _KILL_SECONDS
    while time.monotonic() < deadline:
        live = _live_descendants(os.getpid())
        if not live:
            break
        for pid in live:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.001)  # let them die before the next scan
        reap()
    reap()
    return killed


def _signal_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


class Children:
    """Reaps our children (orphans come to us too) and keeps the main process's status."""

    def __init__(self, main_pid: int) -> None:
        self.main_pid = main_pid
        self.main_status: int | None = None

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.main_pid:
                self.main_status = os.waitstatus_to_exitcode(status)


def _reap_any() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


# --- one run ------------------------------------------------------------------


class Run:
    """One command under this wrapper: its output buffers, its children, its outcome."""

    def __init__(self, limit: int, subreaper: bool) -> None:
        self.stdout = HeadTail(limit)
        self.stderr = HeadTail(limit)
        self.subreaper = subreaper
        self.children: Children | None = None
        self.timed_out = False
        self.killed: set[int] = set()

    def execute(self, command: list[str], timeout: float) -> None:
        out_r, out_w = os.pipe()  # non-inheritable: only the dup2 copies reach the child
        err_r, err_w = os.pipe()
        try:
            main_pid = os.posix_spawnp(
                command[0],
                command,
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, out_w, 1),
                    (os.POSIX_SPAWN_DUP2, err_w, 2),
                ],
                setsid=True,
                # Python ignores SIGPIPE; `yes | head` needs the default back (as Popen does).
                setsigdef=[signal.SIGPIPE, *_XFSZ],
            )
        finally:
            os.close(out_w)
            os.close(err_w)
        self.children = children = Children(main_pid)
        poller = Poller({out_r: self.stdout, err_r: self.stderr})
        pidfd = _pidfd(main_pid)
        if pidfd is not None:
            poller.poll.register(pidfd, select.POLLIN)

        deadline = time.monotonic() + timeout
        # Wait for the main process, not for end of file: a background child holding
        # stderr open must not keep the call waiting for its timeout.
        while children.main_status is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.timed_out = True
                break
            poller.read_ready(remaining if pidfd is not None else min(remaining, 0.05))
            children.reap()

        self.kill()
        if children.main_status is None:
            try:
                _, status = os.waitpid(main_pid, 0)
                children.main_status = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                pass
        if pidfd is not None:
            poller.poll.unregister(pidfd)
            os.close(pidfd)
        poller.drain(_DRAIN_SECONDS)

    def kill(self) -> None:
        # Also when the main process is not known yet (stopped while it was starting).
        main_pid = self.children.main_pid if self.children else None
        reap = self.children.reap if self.children else _reap_any
        self.killed |= kill_tree(main_pid, self.subreaper, reap) - {main_pid}

    def report(self) -> dict[str, object]:
        return {
            "exit_code": self.children.main_status if self.children else None,
            "timed_out": self.timed_out,
            "killed": len(self.killed),
            "stdout": self.stdout.report(),
            "stderr": self.stderr.report(),
        }


class Poller:
    """The command's output pipes, read as data arrives into their buffers."""

    def __init__(self, buffers: dict[int, HeadTail]) -> None:
        self.buffers = buffers
        self.poll = select.poll()
        for fd in buffers:
            os.set_blocking(fd, False)
            self.poll.register(fd, select.POLLIN)

    def read_ready(self, seconds: float) -> None:
        for fd, _ in self.poll.poll(max(seconds, 0) * 1000):
            buffer = self.buffers.get(fd)
            if buffer is None:
                continue  # the pidfd: the caller reaps
            try:
                data = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                continue
            if data:
                buffer.write(data)
            else:
                self.poll.unregister(fd)
                del self.buffers[fd]
                os.close(fd)

    def drain(self, seconds: float) -> None:
        """Read what is left in the pipes (written before the kill) up to end of file."""
        deadline = time.monotonic() + seconds
        while self.buffers and (remaining := deadline - time.monotonic()) > 0:
            self.read_ready(remaining)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def main(argv: list[str]) -> int:
    """`reaper.py TIMEOUT LIMIT -- COMMAND...`: seconds, and bytes kept per stream."""
    timeout, limit = float(argv[1]), int(argv[2])
    command = argv[4:] if argv[3:4] == ["--"] else argv[3:]
    parent = os.getppid()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    # Before the command starts, so that nothing it forks can slip past us.
    subreaper = _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    # If the caller dies (a hard kill of the kernel), clean up as for SIGTERM.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        return 1
    run = Run(limit, subreaper)
    try:
        try:
            run.execute(command, timeout)
        except OSError as exc:  # the command could not start (not found, not executable)
            run.stderr.write(f"{exc}\n".encode())
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            report = {**run.report(), "exit_code": code}
        else:
            report = run.report()
        # repr of str, int, bool and None reads back with ast.literal_eval.
        sys.stdout.write(repr(report))
        sys.stdout.flush()
    except Stopped:
        # The caller gave up on this call: no report, only the cleanup.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        run.kill()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
