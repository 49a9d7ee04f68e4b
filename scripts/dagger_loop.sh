#!/usr/bin/env bash
# DAgger rounds: generate with student_r (-> expert), evaluate, SFT, train student_{r+1}, serve it; resumable per stage.
#   scripts/dagger_loop.sh --config config/train/dagger_demo.yaml --loop_dir outputs/dagger
# The local model servers it starts (base and trained students) are stopped however the script ends.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/scripts/cli.sh"
case "${1:-}" in -h|--help) exec "$REPO/.venv/bin/python" -m oec.training.dagger --help ;; esac
"$REPO/scripts/setup.sh"
source "$REPO/scripts/env.sh"
source "$REPO/scripts/local_models.sh"
oec_run python -m oec.training.dagger "$@"
