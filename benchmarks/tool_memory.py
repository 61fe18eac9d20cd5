"""Peak memory of the process tools on 200 MB of output. Target: < 50 MB above baseline.

For each case a fresh Python builds the shell tools, makes one warm-up call,
takes its peak RSS as the baseline, runs the case and prints the peak RSS above
that baseline (the process that runs the tool: the kernel, in real use). It also
prints the peak RSS of the per-call wrapper process, which holds the bounded
buffers (its VmHWM, sampled every 10 ms while it runs; getrusage would count the
parent's memory a child inherits until it execs).

    python benchmarks/tool_memory.py [--mb 200] [--sandbox auto|on|off]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

CASE = """
import json, os, resource, sys, tempfile, threading, time
from pathlib import Path
from nbagent.tools.shell import shell_tools
from nbagent.tools.workspace import Workspace

tool_name, argument, sandbox = json.loads(sys.argv[1])
ws = Workspace(Path(tempfile.mkdtemp()))
tools = {t.name: t for t in shell_tools(ws, sandbox=sandbox, default_timeout=300)}
tools["execute_shell_command"].call({"command": "true"})  # imports, sandbox probe


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def descends_from_us(pid):
    while pid > 1:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        pid = int(status.split("PPid:")[1].split()[0])
        if pid == os.getpid():
            return True
    return False


wrapper_kb = 0
running = True


def sample():
    global wrapper_kb
    while running:
        for entry in Path("/proc").iterdir():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\\0")
                if any(a.endswith(b"/reaper.py") for a in args) and descends_from_us(
                    int(entry.name)
                ):
                    hwm = (entry / "status").read_text().split("VmHWM:")[1].split()[0]
                    wrapper_kb = max(wrapper_kb, int(hwm))
            except (OSError, ValueError, IndexError):
                pass
        time.sleep(0.01)


base = peak_mb()
sampler = threading.Thread(target=sample)
sampler.start()
start = time.perf_counter()
text = tools[tool_name].call(argument).text()
seconds = time.perf_counter() - start
running = False
sampler.join()
print(json.dumps({
    "seconds": seconds,
    "above_baseline_mb": peak_mb() - base,
    "wrapper_peak_mb": wrapper_kb / 1024,
    "result_chars": len(text),
    "notice": next((line for line in text.splitlines() if "omitted" in line), ""),
}))
"""


def measure(tool_name: str, argument: dict, sandbox: bool | str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CASE, json.dumps([tool_name, argument, sandbox])],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="megabytes of output per case")
    parser.add_argument("--sandbox", choices=["auto", "on", "off"], default="auto")
    args = parser.parse_args()
    sandbox = {"auto": "auto", "on": True, "off": False}[args.sandbox]
    size = args.mb * 1_000_000
    cases = {
        "execute_shell_command": {"command": f"yes | head -c {size}", "timeout": 300},
        "execute_python_code": {
            "code": f"import sys\nfor _ in range({args.mb}):\n"
            "    sys.stdout.write('x' * 999_999 + '\\n')\n"
        },
    }
    print(f"{args.mb} MB of output, sandbox={args.sandbox}; target: < 50 MB above baseline")
    started = time.perf_counter()
    for name, argument in cases.items():
        r = measure(name, argument, sandbox)
        verdict = "ok" if r["above_baseline_mb"] < 50 else "OVER TARGET"
        print(
            f"{name:24s} peak RSS above baseline {r['above_baseline_mb']:7.1f} MB ({verdict}); "
            f"wrapper peak {r['wrapper_peak_mb']:5.1f} MB; "
            f"{r['seconds']:.2f}s; result {r['result_chars']:,} chars"
        )
        print(f"{'':24s} {r['notice'].strip()}")
    print(f"total {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
