#!/usr/bin/env bash
# Install what the tests need, then lint, type-check and run every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Browser tests drive Debian's Chromium; never a downloaded browser.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

bash scripts/install.sh test

ruff check src tests benchmarks
mypy
python -m pytest "$@"
