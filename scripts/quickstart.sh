#!/usr/bin/env bash
# Install nbagent (with its JupyterLab extension and the quickstart's own dependencies)
# and open the quickstart notebook in JupyterLab.
# Usage: scripts/quickstart.sh [JUPYTER LAB ARGUMENTS]   e.g. --no-browser --port=8890
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# shellcheck source=scripts/python_env.sh
source "$ROOT/scripts/python_env.sh"
nbagent_activate "$ROOT"
bash "$ROOT/scripts/install.sh" quickstart

lab_args=()
# JupyterLab refuses to start as root without it (containers, cloud machines).
if [ "$(id -u)" = 0 ]; then
  lab_args+=(--allow-root)
fi

cd "$ROOT/notebooks"
if [ ! -f .env ] && [ -z "${ANTHROPIC_API_KEY:-}" ]; then
  echo "Note: set ANTHROPIC_API_KEY (or put it in notebooks/.env) before running %%agent cells."
fi
exec jupyter lab quickstart.ipynb ${lab_args[@]+"${lab_args[@]}"} "$@"
