#!/usr/bin/env bash
# SFT data -> a trained student (LoRA by default) whose loss covers only the expert's turns. `./train_sft.sh --help`.
#   ./train_sft.sh --data sft/oec.jsonl --model tiny --output_dir runs/tiny --max_steps 8
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$REPO/scripts/cli.sh"
source "$REPO/scripts/env.sh"
exec "${OEC_PYTHON_M[@]}" oec.training.cli "$@"
