#!/usr/bin/env bash
# Generate on-policy expert correction (OEC) trajectories: a student starts each rollout, an expert takes over.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'TXT'
Usage: generate_oec.sh [options] [-- extra sweagent run-batch options]

With no options: the embedded default. Starts the local model servers if needed (0.5B student, 1.5B expert),
runs config/local_demo.yaml on the demo instances (config/demo/instances.json), stops what it started.

Options (the cluster setup):
  --config FILE               agent config (default: config/local_demo.yaml)
  --instances FILE|DATASET    SWE-smith JSON/JSONL file, or a datasets name/folder (then --split)
  --split NAME                dataset split (default: train)
  --output_dir DIR            run directory (default: from the config)
  --num_workers N             parallel rollouts
  --rollouts_per_instance K   rollouts per instance (distinct switch draws)
  --slice A:B                 only these instances (Python slice)
  --filter REGEX              only instance ids matching REGEX
  --seed N                    run seed (fixes every switch point)
  --executor threads|ray      where rollouts run; --ray_address ADDR joins a cluster
  --student_host H --student_port P   vLLM server of the student (sets STUDENT_HOST/STUDENT_PORT)
  --local_models auto|yes|no  start the local model servers (auto: when the config uses them)
Environment: STUDENT_HOST, STUDENT_PORT, ANTHROPIC_API_KEY, OPENAI_API_KEY, OEC_CACHE.
Any other config key can follow `--`, e.g. -- --agent.model.switch.end 10
TXT
}

"$REPO/scripts/setup.sh"
source "$REPO/scripts/env.sh"
source "$REPO/scripts/local_models.sh"

config="$REPO/config/local_demo.yaml"; local_models=auto; args=(); instances_type=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --config) config="$2"; shift 2 ;;
    --instances)
      if [ -e "$2" ] && [ ! -d "$2" ]; then instances_type=file; else instances_type=huggingface; fi
      args+=(--instances.type "$instances_type" --instances.path "$2"); shift 2 ;;
    --split) args+=(--instances.split "$2"); shift 2 ;;
    --output_dir|--num_workers|--rollouts_per_instance|--seed) args+=("$1" "$2"); shift 2 ;;
    --slice) args+=(--instances.slice "$2"); shift 2 ;;
    --filter) args+=(--instances.filter "$2"); shift 2 ;;
    --executor) args+=(--executor.type "$2"); shift 2 ;;
    --ray_address) args+=(--executor.ray_address "$2"); shift 2 ;;
    --student_host) export STUDENT_HOST="$2"; shift 2 ;;
    --student_port) export STUDENT_PORT="$2"; shift 2 ;;
    --local_models) local_models="$2"; shift 2 ;;
    --) shift; args+=("$@"); break ;;
    *) echo "generate_oec.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -f "$config" ] || config="$REPO/$config"
[ -f "$config" ] || { echo "generate_oec.sh: config file not found: $config" >&2; exit 2; }

if [ "$local_models" = yes ] || { [ "$local_models" = auto ] && grep -q 'OEC_\(STUDENT\|EXPERT\)_API_BASE' "$config"; }; then
  echo "[generate_oec] starting local model servers (first run downloads and verifies the weights)"
  models=()
  grep -q OEC_STUDENT_API_BASE "$config" && models+=(student)
  grep -q OEC_EXPERT_API_BASE "$config" && models+=(expert)
  oec_start_local_models "${models[@]}"
fi
sweagent run-batch --config "$config" "${args[@]}"
