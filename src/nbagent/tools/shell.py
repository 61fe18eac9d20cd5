"""Tools that run shell commands and Python in the workspace.

Every run gets a scrubbed environment (no API keys or tokens) and its own
process group, which is killed outright when the timeout expires.
"""

from __future__ import annotations

import shutil
import sys

from .base import Tool, ToolError, tool
from .process import format_process_result, run_process
from .workspace import Workspace


def shell_tools(ws: Workspace, *, default_timeout: float = 30) -> list[Tool]:
    """execute_shell_command, execute_python_code and execute_python_file, run in `ws.root`."""
    # Models write bash (arrays, [[ ]], source); /bin/sh is often dash.
    bash = shutil.which("bash")

    @tool(category="execute")
    def execute_shell_command(command: str, timeout: int = int(default_timeout)) -> str:
        """Run a shell command (bash) in the workspace directory and return its exit code and output.

        Use it for anything a terminal is good at: running tests or scripts,
        installing packages, git, searching files (grep, find). Commands are not
        interactive (stdin is empty), and the command and everything it started
        are killed when the timeout expires, so do not start long-running
        servers in the foreground.

        Args:
            command: The command line to run, e.g. "ls -la" or "pytest -q tests".
            timeout: Seconds to wait before killing the command.
        """
        if not command.strip():
            raise ToolError("command is empty.")
        if timeout < 1:
            raise ToolError(f"timeout must be at least 1 second (got {timeout}).")
        if bash:
            result = run_process([bash, "-c", command], cwd=ws.root, timeout=timeout, shell=False)
        else:
            result = run_process(command, cwd=ws.root, timeout=timeout, shell=True)
        return format_process_result(result)

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
        # The code goes in on stdin ("python -") so no temporary file is left in the workspace.
        result = run_process(
            [sys.executable, "-"], cwd=ws.root, timeout=default_timeout, shell=False, stdin=code
        )
        return format_process_result(result)

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
        result = run_process(
            [sys.executable, str(path)], cwd=ws.root, timeout=default_timeout, shell=False
        )
        return format_process_result(result)

    return [execute_shell_command, execute_python_code, execute_python_file]
