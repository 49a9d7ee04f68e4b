#!/usr/bin/env bash
# Generate on-policy expert correction (OEC) trajectories: a student starts each rollout, an expert takes over.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'TXT'
Usage: generate_oec.sh [options] [-- extra sweagent run-batch options]

With no options: the paper's setup on this machine (config/local_paper_setup.yaml): starts the local model servers
if needed (0.5B student behind the vLLM-style OpenAI endpoint, 1.5B expert behind the Anthropic Messages endpoint),
runs two demo instances (config/demo/instances.json), prints a table of the rollouts, and stops what it started
however it ends: done, an error, Ctrl-C or SIGTERM (after kill -9 the servers stop themselves).

Options (the cluster setup):
  --config FILE               agent config (default: config/local_paper_setup.yaml)
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

source "$REPO/scripts/cli.sh"
config="$REPO/config/local_paper_setup.yaml"; local_models=auto; args=(); output_dir=""; workers=2
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --) shift; args+=("$@"); break ;;
    --config) oec_need_value "$@"; config="$2" ;;
    --instances)
      oec_need_value "$@"
      if [ -e "$2" ] && [ ! -d "$2" ]; then instances_type=file; else instances_type=huggingface; fi
      args+=(--instances.type "$instances_type" --instances.path "$2") ;;
    --split) oec_need_value "$@"; args+=(--instances.split "$2") ;;
    --output_dir|--num_workers|--rollouts_per_instance|--seed)
      oec_need_value "$@"; args+=("$1" "$2")
      case "$1" in --output_dir) output_dir="$2" ;; --num_workers) workers="$2" ;; esac ;;
    --slice) oec_need_value "$@"; args+=(--instances.slice "$2") ;;
    --filter) oec_need_value "$@"; args+=(--instances.filter "$2") ;;
    --executor) oec_need_value "$@"; args+=(--executor.type "$2") ;;
    --ray_address) oec_need_value "$@"; args+=(--executor.ray_address "$2") ;;
    --student_host) oec_need_value "$@"; export STUDENT_HOST="$2" ;;
    --student_port) oec_need_value "$@"; export STUDENT_PORT="$2" ;;
    --local_models)
      oec_need_value "$@"
      case "$2" in auto|yes|no) local_models="$2" ;; *) oec_usage_error "--local_models $2: expected auto, yes or no" ;; esac ;;
    *) oec_usage_error "unknown option '$1'" ;;
  esac
  shift 2
done
[ -f "$config" ] || config="$REPO/$config"
[ -f "$config" ] || oec_usage_error "config file not found: $config"

"$REPO/scripts/setup.sh"
source "$REPO/scripts/env.sh"
source "$REPO/scripts/local_models.sh"
models=()
case "$local_models" in
  yes) models=(student expert) ;;
  auto) used="$(sweagent serve-local used --config "$config" "${args[@]}")" || exit $?  # asked of the loaded config
        read -ra models <<<"$used" ;;
esac
if [ ${#models[@]} -gt 0 ]; then
  echo "[generate_oec] starting local model servers: ${models[*]} (first run downloads and verifies the weights)"
  export OEC_LOCAL_PARALLEL="$workers"  # one server slot per rollout worker
  oec_start_local_models "${models[@]}"
fi
started=$SECONDS
status=0
oec_run sweagent run-batch --config "$config" "${args[@]}" || status=$?
# Also after unfinished rollouts (exit 1): the table shows what did finish. Through oec_run, so Ctrl-C still stops
# the script at once, killed by the signal.
[ "$status" = 2 ] || oec_run python "$REPO/scripts/rollout_summary.py" ${output_dir:+"$output_dir"} --config "$config" || true
echo "[generate_oec] done in $((SECONDS - started)) s"
exit "$status"
