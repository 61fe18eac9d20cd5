"""What `%load_ext nbagent` adds to IPython's start-up. Target: at most 0.1 s.

Each sample is a fresh interpreter that creates an InteractiveShell, with and
without loading the extension; prints the medians and the difference. Also
checks that loading did not import the SDK (the first turn pays for that).

    python benchmarks/extension_load.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

BASE = (
    "import time; t = time.perf_counter()\n"
    "from IPython.core.interactiveshell import InteractiveShell\n"
    "shell = InteractiveShell.instance()\n"
)
LOAD = "shell.run_line_magic('load_ext', 'nbagent')\n"
END = (
    "elapsed = time.perf_counter() - t\n"
    "import sys\n"
    "assert 'anthropic' not in sys.modules, 'loading imported the SDK'\n"
    "print(elapsed)\n"
)


def sample(load: bool) -> float:
    code = BASE + (LOAD if load else "") + END
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    sample(True)  # warm the file cache and bytecode
    plain, loaded = [], []
    for _ in range(args.repeat):
        plain.append(sample(False))
        loaded.append(sample(True))
    p, lo = statistics.median(plain), statistics.median(loaded)
    print(f"IPython shell start-up: {p * 1000:.0f} ms (median of {args.repeat})")
    print(f"with %load_ext nbagent: {lo * 1000:.0f} ms")
    print(f"added by nbagent:       {(lo - p) * 1000:.0f} ms  (target <= 100 ms); SDK not imported")


if __name__ == "__main__":
    main()
