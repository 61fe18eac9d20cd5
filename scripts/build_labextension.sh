#!/usr/bin/env bash
# Build the JupyterLab extension (labextension/) into src/nbagent/labextension/.
#
# Works offline against whatever npm registry this machine's npm is configured for,
# and on a machine where only `pip install jupyterlab` happened (jlpm comes with it;
# Node.js >= 20 must be on PATH). Safe to run again: an up-to-date install is a no-op.
#
# Environment:
#   PYTHON                    the Python whose JupyterLab to build against (default: python3,
#                             else python; install.sh runs this with its virtualenv active)
#   YARN_NPM_REGISTRY_SERVER  registry for jlpm (default: `npm config get registry`)
#   YARN_CA_FILE_PATH         CA bundle for jlpm (default: `npm config get cafile`)
#   NBAGENT_LAB_DEV=1         development build (source maps, no minification)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXT="$ROOT/labextension"
PY="${PYTHON:-$(command -v python3 || command -v python || echo python3)}"

if ! command -v node >/dev/null 2>&1; then
  echo "build_labextension: Node.js (>= 20) is required on PATH" >&2
  exit 1
fi

# jlpm (yarn berry) does not read npm's config; point it at the registry npm uses, and
# trust the certificate authorities npm trusts (a proxy's own CA, say). Without the CA,
# a machine whose yarn cache is cold fails with "self-signed certificate in chain".
npm_setting() {
  local value
  value="$(npm config get "$1" 2>/dev/null || true)"
  if [ "$value" != "undefined" ] && [ "$value" != "null" ]; then
    printf '%s' "$value"
  fi
}
if command -v npm >/dev/null 2>&1; then
  if [ -z "${YARN_NPM_REGISTRY_SERVER:-}" ]; then
    registry="$(npm_setting registry)"
    [ -z "$registry" ] || export YARN_NPM_REGISTRY_SERVER="$registry"
  fi
  if [ -z "${YARN_CA_FILE_PATH:-}" ]; then
    cafile="$(npm_setting cafile)"
    [ -z "$cafile" ] || export YARN_CA_FILE_PATH="$cafile"
  fi
fi
export YARN_ENABLE_TELEMETRY=0

# jlpm ships with JupyterLab (jupyter_builder); run the one of the chosen Python.
jlpm() {
  "$PY" -c 'import sys; from jupyter_builder.jlpm import main; sys.exit(main())' "$@"
}

# The installed JupyterLab's own core package data: `jupyter labextension build`
# (jupyter_builder, behind `jupyter labextension build`) would otherwise try to
# download @jupyterlab/core-meta.
CORE_PACKAGE_FILE="$("$PY" -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging", "package.json"))')"

cd "$EXT"
start=$(date +%s)

# --immutable: the committed yarn.lock is the truth; change dependencies with a
# plain `jlpm install` in labextension/ and commit the new lockfile.
jlpm install --immutable

jlpm run build:lib

mode=()
if [ "${NBAGENT_LAB_DEV:-0}" = "1" ]; then
  mode=(--development True)
fi
"$PY" -m jupyter_builder.main build "${mode[@]}" . --core-package-file "$CORE_PACKAGE_FILE"

echo "build_labextension: built src/nbagent/labextension in $(( $(date +%s) - start )) s"
