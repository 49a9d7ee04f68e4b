#!/usr/bin/env bash
# The test command: installs what is missing, then runs the whole suite (real sandbox, real local models).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$REPO/scripts/setup.sh"
source "$REPO/scripts/env.sh"
cd "$REPO"
exec python -m pytest -q "$@"
