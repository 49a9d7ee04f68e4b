#!/usr/bin/env bash
# Sort a run's failed trajectories into failure categories with an LLM judge, then chart them.
#   ./categorize_failures.sh --run_dir runs/x --eval_dir evals/x [--model gpt-4o] [--samples 3] [--limit 50]
#   ./categorize_failures.sh compare runs/x/failure_categorization/failure_categories.json other.json
# Without --model the local expert server judges (started on first use). Rerunning asks only for what is missing.
# See `./categorize_failures.sh --help` and config/failure_taxonomy.yaml.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$REPO/scripts/env.sh"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
case "${1:-}" in
  categorize|compare) exec python -m failure_categorization "$@" ;;
  -h|--help|"") exec python -m failure_categorization categorize --help ;;
  *) exec python -m failure_categorization categorize "$@" ;;
esac
