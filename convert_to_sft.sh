#!/usr/bin/env bash
# Resolved OEC trajectories -> SFT data that trains only on the expert's turns. `./convert_to_sft.sh --help` for options.
#   ./convert_to_sft.sh --runs trajectories/run1 --evals evals/run1 --output data/sft.jsonl
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$REPO/scripts/cli.sh"
source "$REPO/scripts/env.sh"
exec "${OEC_PYTHON_M[@]}" oec.sft.cli "$@"
