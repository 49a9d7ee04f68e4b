#!/usr/bin/env bash
# Grade a run's predictions against unit tests into SWE-smith reports (<eval>/<traj_id>/report.json + summary.json).
#   ./eval_swesmith.sh trajectories/run1 --num_workers 2   # --backend docker: SWE-smith's harness; exit 1: some not graded
# `./eval_swesmith.sh --help` lists the options. Exit status 2: bad input (one line on stderr).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/cli.sh"
oec_stage oec.evaluation "$@"
