#!/usr/bin/env bash
# Sort a run's failed trajectories into failure categories with an LLM judge (the local expert server by default), then chart them.
#   ./categorize_failures.sh --run_dir runs/x --eval_dir runs/x/eval   # or: compare A.json B.json
# `./categorize_failures.sh --help` lists the options. Exit status 2: bad input (one line on stderr).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/cli.sh"
oec_stage failure_categorization "$@"
