"""How long `%load_ext nbagent` takes. Target: about 30 ms.

Each sample is a fresh interpreter with an InteractiveShell (and the modules a
kernel has loaded anyway), timing the `%load_ext nbagent` call alone; prints the
median. Also checks that loading imported neither the SDK (in a kernel it is
warmed up after the load cell has replied, see nbagent.jupyter.warmup) nor a
notebook-format library. benchmarks/first_token.py gives the load time in a real
kernel, bridge included.

    python benchmarks/extension_load.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CODE = (
    "import ipykernel.ipkernel, ipykernel.zmqshell\n"  # what a kernel has imported anyway
    "from IPython.core.interactiveshell import InteractiveShell\n"
    "shell = InteractiveShell.instance()\n"
    "import time; t = time.perf_counter()\n"
    "shell.run_line_magic('load_ext', 'nbagent')\n"
    "elapsed = time.perf_counter() - t\n"
    "import sys\n"
    "for name in ('anthropic', 'greenlet', 'nbformat', 'jsonschema'):\n"
    "    assert name not in sys.modules, f'loading imported {name}'\n"
    "print(elapsed)\n"
)


def sample() -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True, env=env
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    sample()  # warm the file cache and bytecode
    times = [sample() for _ in range(args.repeat)]
    print(
        f"%load_ext nbagent: {statistics.median(times) * 1000:.0f} ms (median of {args.repeat}, target ~30 ms)"
    )
    print("not imported at load: anthropic, greenlet, nbformat, jsonschema")


if __name__ == "__main__":
    main()
