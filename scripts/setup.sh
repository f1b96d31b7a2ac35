#!/usr/bin/env bash
# Creates .venv with Python 3.10 and the pinned TFX 1.16 stack, plus the system
# libraries fxemu needs. Idempotent: does nothing when everything is in place.
#   scripts/setup.sh          what `make run` needs
#   scripts/setup.sh --test   also what the tests need: Debian's chromium (headless), which
#                             renders the run report in tests/test_report.py
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

find_python310() {
  local candidates=()
  [ -n "${PYTHON310:-}" ] && candidates+=("$PYTHON310")
  command -v python3.10 >/dev/null 2>&1 && candidates+=("$(command -v python3.10)")
  if command -v pyenv >/dev/null 2>&1; then
    local root; root=$(pyenv root)
    for d in "$root"/versions/3.10*/bin/python3.10; do [ -x "$d" ] && candidates+=("$d"); done
  fi
  for d in /usr/bin/python3.10 /usr/local/bin/python3.10 "$HOME"/.pyenv/versions/3.10*/bin/python3.10; do
    [ -x "$d" ] && candidates+=("$d")
  done
  local c
  for c in "${candidates[@]}"; do
    # A pyenv shim may exist without a 3.10 behind it: ask the interpreter itself.
    if "$c" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' >/dev/null 2>&1; then
      echo "$c"; return 0
    fi
  done
  return 1
}

system_packages() {
  # libfluidsynth renders the piano test set; installed through apt when missing.
  if ! ldconfig -p 2>/dev/null | grep -q libfluidsynth; then
    apt_install "to render the piano test set" libfluidsynth3 ||
      log "         'fxemu synth' will fail to render the piano test set until it is installed."
  fi
}

apt_install() {
  # apt_install WHY PACKAGE...: installs Debian packages when root with apt-get, else warns.
  local why=$1; shift
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing $* (apt-get) $why"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    log "WARNING: $* missing and cannot be installed here (need root + apt-get) $why"
    return 1
  fi
}

test_packages() {
  # Headless Chromium renders the HTML run report in the tests (skipped without it).
  if ! command -v chromium >/dev/null 2>&1; then
    apt_install "to render the run report in the tests" chromium || true
  fi
}

main() {
  local with_tests=0
  for arg in "$@"; do
    case "$arg" in
      --test) with_tests=1 ;;
      *) log "unknown option $arg (expected --test)"; exit 2 ;;
    esac
  done
  system_packages
  if [ "$with_tests" = 1 ]; then test_packages; fi
  local stamp=.venv/.fxemu-installed
  local want; want=$(cat requirements.txt requirements-test.txt constraints.txt setup.py | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/fxemu ]; then
    return 0
  fi
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)'; then
    local py
    if ! py=$(find_python310); then
      log "ERROR: fxemu needs Python 3.10 (TFX 1.16 supports no newer Python) and none was found."
      log "       Install it (e.g. 'pyenv install 3.10.13' or 'apt-get install python3.10') or set PYTHON310=/path/to/python3.10."
      exit 1
    fi
    log "creating .venv with $py"
    rm -rf .venv
    PYENV_VERSION=$(basename "$(dirname "$(dirname "$py")")") "$py" -m venv .venv 2>/dev/null || "$py" -m venv .venv
  fi
  log "installing the pinned stack into .venv (first time: about 4 minutes, 3.5 GB)"
  .venv/bin/python -m pip install -q --upgrade pip wheel
  .venv/bin/python -m pip install -q -r requirements.txt -r requirements-test.txt -c constraints.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
  log "ready: .venv/bin/fxemu"
}
main "$@"
