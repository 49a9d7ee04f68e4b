#!/usr/bin/env bash
# Measure how far student (or OEC) trajectories drift from expert ones, turn by turn: per-turn Fréchet distance,
# Gaussian KL and MMD² with paired-bootstrap bands, plus plots.
#   ./analyze_covariate_shift.sh --group expert=runs/expert --group student=runs/student --reference expert \
#       --output-dir results/shift [--bootstrap.replicates 200] [--metrics.pca_dim 32]
#   ./analyze_covariate_shift.sh --config config/covariate_shift_example.yaml
# Reruns embed only turn texts not yet in the cache. See `--help` and covariate_shift_analysis/README.md.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$REPO/scripts/cli.sh"
source "$REPO/scripts/env.sh"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
exec "${OEC_PYTHON_M[@]}" covariate_shift_analysis "$@"
