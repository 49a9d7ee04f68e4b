#!/usr/bin/env bash
# The test command: installs what is missing, then runs the whole suite (real sandbox, real local models).
# Options are pytest's (`scripts/test.sh --help`), e.g. -m "not slow" or tests/test_scripts.py.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/scripts/cli.sh"
"$REPO/scripts/setup.sh"
source "$REPO/scripts/env.sh"
cd "$REPO"
exec "${OEC_PYTHON_M[@]}" pytest -q "$@"
