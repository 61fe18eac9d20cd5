# Sourced (not run) by the other scripts: activate the Python environment nbagent goes into.
#
# Inside a virtualenv (VIRTUAL_ENV set): use it. Otherwise make and use the project's .venv,
# because a distribution's own Python (Debian's, for one) is externally managed and pip
# refuses to install into it. The interpreter is `python3`, else `python`: a fresh Debian
# has no `python`. After this, `python`, `pip`, `jupyter`, `ruff`... are the environment's.

nbagent_min_python="3.11"

nbagent_fail() {
  echo "$*" >&2
  exit 1
}

# Print the version of interpreter $1 if it is new enough, else fail with what to do.
nbagent_check_version() {
  local version
  version="$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" ||
    nbagent_fail "Could not run $1."
  "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    nbagent_fail "nbagent needs Python >= $nbagent_min_python; $1 is Python $version."
}

# Make $1 with `python3 -m venv`. Debian splits the venv module into python3-venv: root
# installs it, anyone else is told to.
nbagent_make_venv() {
  local venv="$1" base
  base="$(command -v python3 || command -v python || true)"
  [ -n "$base" ] || nbagent_fail "Python >= $nbagent_min_python is required: install python3 first."
  nbagent_check_version "$base"
  echo "Making a project virtualenv: $(basename "$base") -m venv .venv"
  if "$base" -m venv "$venv" >/dev/null 2>&1; then
    return
  fi
  rm -rf "$venv" # a failed venv is left without pip
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing python3-venv with apt-get (the venv module is missing)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    "$base" -m venv "$venv" || nbagent_fail "$base -m venv failed even with python3-venv installed."
  else
    nbagent_fail "$base -m venv failed: install the venv module first (on Debian/Ubuntu: sudo apt-get install python3-venv), or activate a virtualenv of your own."
  fi
}

nbagent_activate() {
  local root="$1"
  # A parent script (quickstart.sh, test.sh) has already chosen and announced it.
  if [ -n "${NBAGENT_ACTIVE_ENV:-}" ] && [ "$NBAGENT_ACTIVE_ENV" = "${VIRTUAL_ENV:-}" ]; then
    return
  fi
  if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
    echo "Using the active virtualenv $VIRTUAL_ENV"
  else
    export VIRTUAL_ENV="$root/.venv"
    # A .venv without a working pip is what an interrupted or failed `venv` leaves.
    if ! "$VIRTUAL_ENV/bin/python" -m pip --version >/dev/null 2>&1; then
      rm -rf "$VIRTUAL_ENV"
      nbagent_make_venv "$VIRTUAL_ENV"
    fi
    echo "Using the project virtualenv .venv (activate it yourself with: source .venv/bin/activate)"
  fi
  nbagent_check_version "$VIRTUAL_ENV/bin/python"
  # What `source .venv/bin/activate` does, without its prompt changes.
  export PATH="$VIRTUAL_ENV/bin:$PATH"
  export NBAGENT_ACTIVE_ENV="$VIRTUAL_ENV"
  unset PYTHONHOME
  hash -r
}
