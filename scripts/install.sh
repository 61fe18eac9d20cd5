#!/usr/bin/env bash
# Install nbagent, editable, with its JupyterLab extension built, into the active
# virtualenv or else the project's .venv (made on first use; see scripts/python_env.sh).
# Usage: scripts/install.sh [EXTRAS]   e.g. scripts/install.sh test   (default: lab)
# Needs Python >= 3.11 and Node.js >= 20 (the extension is built from labextension/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
extras="${1:-lab}"

# Check Node.js before minutes of pip work, not after.
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 20 ]; then
  echo "Node.js >= 20 is required to build the JupyterLab extension (found: $(node --version 2>/dev/null || echo none)). Install it, then run this again." >&2
  exit 1
fi

# shellcheck source=scripts/python_env.sh
source "$ROOT/scripts/python_env.sh"
nbagent_activate "$ROOT"

echo "Installing JupyterLab and the build tools (pip)"
python -m pip install -q --upgrade "jupyterlab>=4.6,<5" "hatchling>=1.21" "hatch-jupyter-builder>=0.9" editables
# Build the extension first (offline-safe registry settings live in the script), so the
# package build below finds it and skips its own npm step.
bash scripts/build_labextension.sh
echo "Installing nbagent[$extras] (pip, editable)"
python -m pip install -q --no-build-isolation -e ".[$extras]"
