#!/usr/bin/env bash
# Regenerates constraints.txt from the current .venv (run after changing requirements).
set -euo pipefail
cd "$(dirname "$0")/.."
{ echo '# Every transitive pin of a working install (pip freeze): makes installs reproducible'
  echo '# and spares pip the backtracking. Regenerate with scripts/freeze.sh.'
  .venv/bin/python -m pip freeze --exclude-editable | grep -v '^fxemu'; } > constraints.txt
