#!/usr/bin/env bash
# Install what the tests need, then lint, type-check, check the import contracts and run
# every test. Arguments go to pytest (e.g. `scripts/test.sh -x tests/test_cli.py`).
# Uses the active virtualenv, else the project's .venv (see scripts/python_env.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Browser tests drive Debian's Chromium, never a downloaded browser; tool subprocesses
# run in bubblewrap's sandbox.
if ! command -v chromium >/dev/null 2>&1 || ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing chromium and bubblewrap (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium bubblewrap >/dev/null
  else
    echo "Warning: the browser and sandbox tests need chromium and bubblewrap (on Debian: sudo apt-get install chromium bubblewrap)." >&2
  fi
fi

# shellcheck source=scripts/python_env.sh
source "$ROOT/scripts/python_env.sh"
nbagent_activate "$ROOT"
bash scripts/install.sh test

echo "ruff check"
ruff check src tests benchmarks
echo "ruff format --check"
ruff format --check src tests benchmarks
echo "mypy"
mypy
echo "lint-imports"
lint-imports
python -m pytest "$@"
