#!/usr/bin/env bash
# How far student (or OEC) trajectories drift from expert ones, turn by turn (Fréchet, KL, MMD², bootstrap bands, plots).
#   ./analyze_covariate_shift.sh --group expert=runs/expert --group student=runs/student --reference expert --output_dir results/shift
# `./analyze_covariate_shift.sh --help` lists the options. Exit status 2: bad input (one line on stderr).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/cli.sh"
oec_stage covariate_shift_analysis "$@"
