#!/usr/bin/env bash
# The test command: installs what is missing, then runs the whole suite (real sandbox, real local models).
# Options are pytest's (`scripts/test.sh --help`), e.g. -m "not slow" or tests/test_scripts.py.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/scripts/cli.sh"
"$REPO/scripts/setup.sh"
if ! command -v chromium >/dev/null 2>&1 || ! command -v tmux >/dev/null 2>&1; then  # the inspector's UI tests
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium tmux; } >/dev/null 2>&1 \
    || echo "[test] could not install chromium and tmux: the inspector's browser and terminal tests will be skipped" >&2
fi
source "$REPO/scripts/env.sh"
cd "$REPO"
# The options this script documents get the scripts' one-line usage error; any other is pytest's own to report.
for ((i = 1; i <= $#; i++)); do
  case "${!i}" in -k|-m) oec_need_value "${@:i}" ;; esac
done
exec python -m pytest -q "$@"
