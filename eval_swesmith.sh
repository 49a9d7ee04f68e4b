#!/usr/bin/env bash
# Grade a run's predictions against unit tests into SWE-smith reports (<eval>/<traj_id>/report.json + summary.json).
#   ./eval_swesmith.sh trajectories/run1 --workers 2              # local bubblewrap sandbox, demo instances
#   ./eval_swesmith.sh runs/x --instances data/tasks.json --backend docker --workers 16   # SWE-smith's docker harness
# `./eval_swesmith.sh --help` lists the options. Exit codes: 0 done, 1 some predictions could not be graded, 2 bad input.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$REPO/scripts/cli.sh"
# --help needs only the environment, not the (possibly slow) install check.
wants_help=no
for arg in "$@"; do case "$arg" in -h|--help) wants_help=yes ;; esac; done
if [ "$wants_help" = no ] || [ ! -x "${OEC_VENV:-$REPO/.venv}/bin/python" ]; then
  "$REPO/scripts/setup.sh"
fi
source "$REPO/scripts/env.sh"
exec "${OEC_PYTHON_M[@]}" oec.evaluation "$@"
