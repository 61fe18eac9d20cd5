#!/usr/bin/env bash
# Install nbagent into the current Python, editable, with its JupyterLab extension built.
# Usage: scripts/install.sh [EXTRAS]   e.g. scripts/install.sh test
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
extras="${1:-lab}"
python -m pip install -q --upgrade "jupyterlab>=4.6,<5" "hatchling>=1.21" "hatch-jupyter-builder>=0.9" editables
# Build the extension first (offline-safe registry settings live in the script), so the
# package build below finds it and skips its own npm step.
bash scripts/build_labextension.sh
python -m pip install -q --no-build-isolation -e ".[$extras]"
