# Shared set-up for scripts/serve, scripts/test and the benchmarks (sourced, not run).
# Creates .venv when missing, installs Pligt into it from the lock files in requirements/ (again
# only when they or pyproject.toml changed), and installs the system packages it needs with
# apt-get when missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# apt_need COMMAND-OR-LIB PACKAGE...: install PACKAGE(s) unless the check passes.
_apt_missing=()
apt_need() {
  local check="$1"; shift
  case "$check" in
    lib:*) ldconfig -p 2>/dev/null | grep -q "${check#lib:}" && return 0 ;;
    *) command -v "$check" >/dev/null 2>&1 && return 0 ;;
  esac
  _apt_missing+=("$@")
}
apt_install_missing() {
  [ ${#_apt_missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "Installing system packages: ${_apt_missing[*]}" >&2
  # Wait for another apt (a second set-up, unattended upgrades) rather than fail at once.
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${_apt_missing[@]}" >&2
  _apt_missing=()
}

# make_venv EXTRAS: create .venv and install Pligt (with EXTRAS, e.g. "test") from the
# hash-pinned lock file requirements/<EXTRAS or runtime>.txt (scripts/lock writes them): pip
# and the build tools from requirements/build.txt, then the dependencies with --require-hashes,
# then Pligt itself with --no-deps. Isolated builds (Pligt's, gunicorn-h1c's) take their
# setuptools and wheel from build.txt too, hashes checked (--build-constraint). Installs again
# only when pyproject.toml or one of those lock files changed.
make_venv() {
  local extras="${1:-}"
  if [ ! -x "$VENV/bin/python" ]; then
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
      rm -rf "$VENV"
      apt_need __never__ python3-venv
      apt_install_missing
      python3 -m venv "$VENV"
    fi
  fi
  local lock="$ROOT/requirements/${extras:-runtime}.txt"
  local build="$ROOT/requirements/build.txt"
  if [ ! -f "$lock" ] || [ ! -f "$build" ]; then
    echo "No lock file ${lock#"$ROOT/"} (or requirements/build.txt): run scripts/lock" >&2
    return 1
  fi
  local stamp="$VENV/.pligt-installed-${extras:-base}"
  local want
  want="$(cat "$ROOT/pyproject.toml" "$lock" "$build" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "Installing Pligt into $VENV from ${lock#"$ROOT/"} ..." >&2
    local pip=("$VENV/bin/python" -m pip install -q)
    "${pip[@]}" --require-hashes --only-binary=:all: -r "$build" >&2
    "${pip[@]}" --require-hashes --build-constraint "$build" -r "$lock" >&2
    "${pip[@]}" --no-deps --build-constraint "$build" -e "$ROOT" >&2
    echo "$want" > "$stamp"
  fi
}
