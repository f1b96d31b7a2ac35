#!/usr/bin/env bash
# Creates .venv-peers: the peer tools fxemu is benchmarked against (benchmarks/peers.py),
# in an environment of their own. Today: Neural Amp Modeler (pip neural-amp-modeler) and
# the torch it needs. fxemu, its tests and its pipeline never import anything from here.
# Idempotent: does nothing when the environment is in place.
#
#   scripts/setup_peers.sh            make or check .venv-peers
#   PEER_PYTHON=/path/to/python3.11   interpreter to use (default: python3.11, then 3.12, 3.10)
#   PEER_TORCH='torch==2.13.0'        torch requirement (a CPU build where pip finds one)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup-peers] %s\n' "$*" >&2; }

VENV=.venv-peers
NAM_REQUIREMENT='neural-amp-modeler==0.13.0'
TORCH_REQUIREMENT=${PEER_TORCH:-torch==2.13.0}
want=$(printf '%s\n%s\n' "$NAM_REQUIREMENT" "$TORCH_REQUIREMENT" | sha256sum | cut -c1-16)
stamp=$VENV/.fxemu-peers-installed

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && "$VENV/bin/python" -c 'import nam, torch' >/dev/null 2>&1; then
  exit 0
fi

find_python() {
  local c
  for c in ${PEER_PYTHON:-} python3.11 python3.12 python3.10 \
           "$HOME"/.pyenv/versions/3.11*/bin/python3.11; do
    [ -n "$c" ] || continue
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys, venv; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)' >/dev/null 2>&1; then
      command -v "$c"; return 0
    fi
  done
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  if ! py=$(find_python); then
    log "ERROR: the peer benchmark needs Python 3.10-3.12 for torch and neural-amp-modeler; none found."
    log "       Set PEER_PYTHON=/path/to/python3.11."
    exit 1
  fi
  log "creating $VENV with $py"
  "$py" -m venv "$VENV"
fi
log "installing $TORCH_REQUIREMENT and $NAM_REQUIREMENT into $VENV (first time: a few minutes, ~2 GB with a CPU torch)"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first and pinned, so that NAM's unpinned 'torch' does not pull another build.
"$VENV/bin/python" -m pip install -q "$TORCH_REQUIREMENT"
"$VENV/bin/python" -m pip install -q "$NAM_REQUIREMENT" "$TORCH_REQUIREMENT"
"$VENV/bin/python" -c 'import nam, torch' >/dev/null
echo "$want" > "$stamp"
log "ready: $VENV ($("$VENV/bin/python" -c 'import nam, torch; print("nam", nam.__version__, "torch", torch.__version__)'))"
