#!/usr/bin/env bash
# SFT data -> a trained student (LoRA by default) whose loss covers only the expert's turns.
#   ./train_sft.sh --data sft/oec.jsonl --model tiny --output_dir runs/tiny --max_steps 8
# `./train_sft.sh --help` lists the options. Exit status 2: bad input (one line on stderr).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/cli.sh"
oec_stage oec.training.cli "$@"
