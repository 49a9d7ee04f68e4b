#!/usr/bin/env bash
# The whole pipeline on the embedded default, end to end: generate -> evaluate -> SFT -> covariate shift -> judge.
# Uses the oracle expert (config/local_oracle_demo.yaml) so that a laptop run has resolved OEC trajectories; the
# local 0.5B student starts every rollout, and the local 1.5B model is the failure judge.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  cat <<'TXT'
Usage: scripts/run_pipeline.sh [options]
  --output DIR          where everything goes (default: outputs/pipeline)
  --instances N         demo instances per group (default: 4)
  --rollouts K          OEC rollouts per instance (default: 2)
  --config FILE         OEC config (default: config/local_oracle_demo.yaml)
  --instances_file F    instance file (default: config/demo/instances.json)
  --student_calls N     call limit of the pure-student group (default: 6)
  --judge_limit N       failed trajectories the judge looks at (default: 4; 0 skips the judge)
  --num_workers N       parallel rollouts and evaluations (default: 2; also --workers)
Groups: oec (student -> oracle at a step drawn from 1..3), student (never switches), expert (oracle from step 0).
Reruns resume every stage. The local model servers started here are stopped however the script ends.
TXT
}

source "$REPO/scripts/cli.sh"
out="outputs/pipeline"; n=4; k=2; config="config/local_oracle_demo.yaml"; instances="config/demo/instances.json"
student_calls=6; judge_limit=4; workers=2
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --output) oec_need_value "$@"; out="$2" ;;
    --instances) oec_need_value "$@"; n="$2" ;;
    --rollouts) oec_need_value "$@"; k="$2" ;;
    --config) oec_need_value "$@"; config="$2" ;;
    --instances_file) oec_need_value "$@"; instances="$2" ;;
    --student_calls) oec_need_value "$@"; student_calls="$2" ;;
    --judge_limit) oec_need_value "$@"; judge_limit="$2" ;;
    --num_workers|--workers) oec_need_value "$@"; workers="$2" ;;
    *) oec_usage_error "unknown option '$1'" ;;
  esac
  shift 2
done
for number in "$n" "$k" "$student_calls" "$judge_limit" "$workers"; do
  [[ $number =~ ^[0-9]+$ ]] || oec_usage_error "--instances, --rollouts, --student_calls, --judge_limit and --num_workers take whole numbers, not '$number'"
done

"$REPO/scripts/setup.sh"
source "$REPO/scripts/env.sh"
source "$REPO/scripts/local_models.sh"
mkdir -p "$out"; out="$(cd "$out" && pwd)"
[ -f "$instances" ] || instances="$REPO/$instances"
[ -f "$config" ] || config="$REPO/$config"
started=$SECONDS

models=(student)
[ "$judge_limit" -gt 0 ] && models+=(expert)
echo "== [1/6] local model servers: ${models[*]}"
oec_start_local_models "${models[@]}"

batch() {  # name, extra overrides...
  local name="$1"; shift
  echo "== generating group '$name'"
  oec_run sweagent run-batch --config "$config" --instances.path "$instances" --instances.slice ":$n" \
    --num_workers "$workers" --output_dir "$out/runs/$name" \
    --agent.model.models.1.model.instances_path "$instances" "$@"
}
echo "== [2/6] generation"
batch oec --rollouts_per_instance "$k"
batch student --agent.model.switch.type never --agent.model.models.0.model.per_instance_call_limit "$student_calls"
batch expert --agent.model.switch.type step_count --agent.model.switch.step 0

echo "== [3/6] evaluation"
for group in oec student expert; do
  oec_run "$REPO/eval_swesmith.sh" "$out/runs/$group" --instances "$instances" --num_workers "$workers" || [ $? -eq 1 ]
done

echo "== [4/6] SFT conversion (resolved OEC trajectories, student turns masked)"
oec_run "$REPO/convert_to_sft.sh" --runs "$out/runs/oec" --evals "$out/runs/oec/eval" --instances "$instances" \
  --output "$out/sft/oec.jsonl" --val_fraction 0 --quiet

echo "== [5/6] covariate shift"
oec_run "$REPO/analyze_covariate_shift.sh" --group "expert=$out/runs/expert" --group "student=$out/runs/student" \
  --group "oec=$out/runs/oec" --reference expert --output_dir "$out/covariate_shift" \
  --bootstrap.replicates 200 --no_progress

if [ "$judge_limit" -gt 0 ]; then
  echo "== [6/6] failure categorization (judge: local 1.5B)"
  oec_run "$REPO/categorize_failures.sh" --run_dir "$out/runs/student" --eval_dir "$out/runs/student/eval" \
    --instances "$instances" --limit "$judge_limit" --output_dir "$out/failures"
fi

python "$REPO/scripts/pipeline_summary.py" "$out" --seconds $((SECONDS - started))

echo "== run report (HTML, self-contained: open index.html in a browser)"
analysis=("$out/covariate_shift"); [ -d "$out/failures" ] && analysis+=("$out/failures")
oec_run sweagent inspect --html "$out/report" "$out/runs" --sft "$out/sft/oec.jsonl" --analysis "${analysis[@]}"
