"""Tools that run shell commands and Python in the workspace.

Every run gets a scrubbed environment (no credentials), runs in the OS sandbox
where the machine has one, keeps a bounded part of its output, and leaves no
process behind: whatever it started is killed when its command ends or times out.
"""

from __future__ import annotations

import shutil
import sys

from .base import Tool, ToolError, tool
from .process import SandboxSetting, SandboxUnavailable, format_process_result, run_process
from .workspace import Workspace


def shell_tools(
    ws: Workspace,
    *,
    default_timeout: float = 30,
    max_output_chars: int = 50_000,
    sandbox: SandboxSetting = "auto",
    network: bool = True,
) -> list[Tool]:
    """execute_shell_command, execute_python_code and execute_python_file, run in `ws.root`.

    `sandbox`: True (required), False (off) or "auto" (on where bwrap works).
    `network=False` cuts the network inside the sandbox (and needs it).
    `max_output_chars`: how much of each of stdout and stderr is kept (head and tail).
    """
    # Models write bash (arrays, [[ ]], source); /bin/sh is often dash.
    bash = shutil.which("bash")

    def run(argv: list[str], timeout: float, stdin: str | None = None) -> str:
        try:
            result = run_process(
                argv,
                cwd=ws.root,
                workspace=ws.root,
                timeout=timeout,
                shell=False,
                stdin=stdin,
                max_output_chars=max_output_chars,
                sandbox=sandbox,
                network=network,
            )
        except SandboxUnavailable as exc:
            raise ToolError(f"not run: {exc}") from None
        return format_process_result(result, max_chars=max_output_chars)

    @tool(category="execute")
    def execute_shell_command(command: str, timeout: int = int(default_timeout)) -> str:
        """Run a shell command (bash) in the workspace directory and return its exit code and output.

        Use it for anything a terminal is good at: running tests or scripts,
        installing packages, git, searching files (grep, find). Commands are not
        interactive (stdin is empty). When the command ends, anything it left
        running in the background (`cmd &`, nohup, setsid) is killed, and at the
        timeout everything is: do not start servers or daemons with it. Where
        the OS sandbox is on, only the workspace, /tmp and ~/.cache are writable.

        Args:
            command: The command line to run, e.g. "ls -la" or "pytest -q tests".
            timeout: Seconds to wait before killing the command.
        """
        if not command.strip():
            raise ToolError("command is empty.")
        if timeout < 1:
            raise ToolError(f"timeout must be at least 1 second (got {timeout}).")
        return run([bash or "/bin/sh", "-c", command], timeout)

    @tool(category="execute")
    def execute_python_code(code: str) -> str:
        """Run a Python program in a fresh interpreter in the workspace directory.

        Use it for calculations, quick checks and data processing whose output
        you need to see: print what you want back. It does not share variables
        with earlier calls; files in the workspace can be opened by relative
        path and its modules imported.

        Args:
            code: The complete Python source to run.
        """
        # The code goes in on stdin ("python -") and -B writes no bytecode of the modules
        # it imports: a snippet leaves no file in the workspace.
        return run([sys.executable, "-B", "-"], default_timeout, stdin=code)

    @tool(category="execute")
    def execute_python_file(file_path: str) -> str:
        """Run a Python script from the workspace and return its exit code and output.

        Use it to run a script you wrote or one that is part of the project. It
        runs with the workspace as the current directory and is killed if it
        runs too long.

        Args:
            file_path: Path of the .py file, relative to the workspace.
        """
        path = ws.resolve(file_path)
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise ToolError(f"Python file '{file_path}' {what}.")
        return run([sys.executable, str(path)], default_timeout)

    return [execute_shell_command, execute_python_code, execute_python_file]
