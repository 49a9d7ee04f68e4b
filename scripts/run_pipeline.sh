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
  --workers N           parallel rollouts and evaluations (default: 2)
Groups: oec (student -> oracle at a step drawn from 1..3), student (never switches), expert (oracle from step 0).
Reruns resume every stage. The local model servers started here are stopped at the end.
TXT
}

out="outputs/pipeline"; n=4; k=2; config="config/local_oracle_demo.yaml"; instances="config/demo/instances.json"
student_calls=6; judge_limit=4; workers=2
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --output) out="$2"; shift 2 ;;
    --instances) n="$2"; shift 2 ;;
    --rollouts) k="$2"; shift 2 ;;
    --config) config="$2"; shift 2 ;;
    --instances_file) instances="$2"; shift 2 ;;
    --student_calls) student_calls="$2"; shift 2 ;;
    --judge_limit) judge_limit="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    *) echo "run_pipeline.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
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
  sweagent run-batch --config "$config" --instances.path "$instances" --instances.slice ":$n" \
    --num_workers "$workers" --output_dir "$out/runs/$name" \
    --agent.model.models.1.model.instances_path "$instances" "$@"
}
echo "== [2/6] generation"
batch oec --rollouts_per_instance "$k"
batch student --agent.model.switch.type never --agent.model.models.0.model.per_instance_call_limit "$student_calls"
batch expert --agent.model.switch.type step_count --agent.model.switch.step 0

echo "== [3/6] evaluation"
for group in oec student expert; do
  "$REPO/eval_swesmith.sh" "$out/runs/$group" --instances "$instances" --workers "$workers" || [ $? -eq 1 ]
done

echo "== [4/6] SFT conversion (resolved OEC trajectories, student turns masked)"
"$REPO/convert_to_sft.sh" --runs "$out/runs/oec" --evals "$out/runs/oec/eval" --instances "$instances" \
  --output "$out/sft/oec.jsonl" --val_fraction 0 --quiet

echo "== [5/6] covariate shift"
"$REPO/analyze_covariate_shift.sh" --group "expert=$out/runs/expert" --group "student=$out/runs/student" \
  --group "oec=$out/runs/oec" --reference expert --output-dir "$out/covariate_shift" \
  --bootstrap.replicates 200 --no-progress

if [ "$judge_limit" -gt 0 ]; then
  echo "== [6/6] failure categorization (judge: local 1.5B)"
  "$REPO/categorize_failures.sh" --run_dir "$out/runs/student" --eval_dir "$out/runs/student/eval" \
    --instances "$instances" --limit "$judge_limit" --output_dir "$out/failures"
fi

python "$REPO/scripts/pipeline_summary.py" "$out" --seconds $((SECONDS - started))
