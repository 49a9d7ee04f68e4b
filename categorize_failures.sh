#!/usr/bin/env bash
# Sort a run's failed trajectories into failure categories with an LLM judge, then chart them.
#   ./categorize_failures.sh --run_dir runs/x --eval_dir evals/x [--model gpt-4o] [--samples 3] [--limit 50]
#   ./categorize_failures.sh compare runs/x/failure_categorization/failure_categories.json other.json
# Without --model the local expert server judges: one already running, or one started for this script and stopped
# when it ends. Rerunning asks only for what is missing. See `./categorize_failures.sh --help` and
# config/failure_taxonomy.yaml.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$REPO/scripts/cli.sh"
source "$REPO/scripts/env.sh"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
case "${1:-}" in
  categorize|compare) ;;
  -h|--help|"") set -- categorize --help ;;
  *) set -- categorize "$@" ;;
esac
source "$REPO/scripts/local_models.sh"
oec_run "${OEC_PYTHON_M[@]}" failure_categorization "$@"
