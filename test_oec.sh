#!/usr/bin/env bash
# Cheap sanity check of OEC generation: two instances, an early switch (step 1..2), one worker.
# Takes the same options as generate_oec.sh; anything given overrides these defaults.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  echo "Usage: test_oec.sh [generate_oec.sh options] [-- config overrides] — runs 2 instances with a switch at step 1..2"
  "$REPO/generate_oec.sh" --help
  exit 0
fi
# The caller's config overrides (after `--`) follow ours, so theirs win.
options=(); overrides=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; overrides=("$@"); break; fi
  options+=("$1"); shift
done
exec "$REPO/generate_oec.sh" --slice :2 --num_workers 1 --output_dir "${OEC_TEST_OUTPUT:-trajectories/test_oec}" \
  "${options[@]}" -- --agent.model.switch.type random_step_range --agent.model.switch.start 1 \
  --agent.model.switch.end 2 "${overrides[@]}"
