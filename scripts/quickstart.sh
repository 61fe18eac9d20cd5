#!/usr/bin/env bash
# Install nbagent (with its JupyterLab extension) and open the quickstart notebook.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh lab
cd notebooks
if [ ! -f .env ] && [ -z "${ANTHROPIC_API_KEY:-}" ]; then
  echo "Note: set ANTHROPIC_API_KEY (or put it in notebooks/.env) before running %%agent cells."
fi
exec jupyter lab quickstart.ipynb "$@"
