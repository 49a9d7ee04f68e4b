#!/usr/bin/env bash
# Resolved OEC trajectories -> SFT data that trains only on the expert's turns.
#   ./convert_to_sft.sh --runs trajectories/run1 --evals trajectories/run1/eval --output data/sft.jsonl
# `./convert_to_sft.sh --help` lists the options. Exit status 2: bad input (one line on stderr).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/cli.sh"
oec_stage oec.sft.cli "$@"
