"""End to end on real demo instances: a student hands over to the oracle expert, the real evaluation resolves the
rollout, it becomes an SFT row training only on expert turns, and it shows up in the covariate-shift outputs."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from covariate_shift_analysis.analysis import run_analysis
from covariate_shift_analysis.config import load_config
from oec.evaluation.reports import read_report
from oec.evaluation.run import evaluate_run
from oec.sft.pipeline import ConvertOptions, convert
from sweagent.environment.task_repos.workspace import build_workspace
from sweagent.instance import load_instances
from sweagent.run.config_loading import build_config
from sweagent.run.run_batch import RunBatchConfig, run_batch
from sweagent.trajectory import load_trajectory, traj_path
from conftest import XML_TOOLS

REPO = Path(__file__).resolve().parents[1]
INSTANCES = REPO / "config/demo/instances.json"
FC_EXPERT_TOOLS = {"bundles": [{"path": "tools/registry"}, {"path": "tools/edit_anthropic"}, {"path": "tools/review_on_submit_m"}],
                   "parse_function": {"type": "function_calling"}}
# The student edits a source file into a syntax error and leaves a junk script behind.
SABOTAGE = ("<function=bash><parameter=command>for f in $(git ls-files '*.py' | grep -v test | head -1); "
            "do echo 'broken = (' >> $f; done; echo 'print(1)' > repro.py</parameter></function>")
pytestmark = pytest.mark.slow


def one_per_repo() -> list[str]:
    chosen: dict[str, str] = {}
    for instance in load_instances(INSTANCES):
        chosen.setdefault(instance.repo, instance.instance_id)
    return sorted(chosen.values())


def generate(folder: Path, student_outputs: list, switch_step: int, expert_tools: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "student.yaml").write_text(yaml.safe_dump(student_outputs))
    expert = {"model": {"type": "oracle", "instances_path": str(INSTANCES)}, **({"tools": expert_tools} if expert_tools else {})}
    data = {"agent": {"templates": {"system_template": "{{command_docs}}\n{{format_instructions}}"},
                      "tools": XML_TOOLS,
                      "model": {"type": "switching",
                                "models": [{"model": {"type": "replay", "replay_path": str(folder / "student.yaml"), "name": "student"}}, expert],
                                "switch": {"type": "step_count", "step": switch_step}}},
            "instances": {"path": str(INSTANCES), "filter": "^(" + "|".join(one_per_repo()) + ")$"},
            "output_dir": str(folder / "run"), "num_workers": 2}
    (folder / "config.yaml").write_text(yaml.safe_dump(data))
    counts = run_batch(build_config(RunBatchConfig, [folder / "config.yaml"], []))
    assert counts == {"submitted": len(one_per_repo())}
    evaluate_run(folder / "run", instances_file=INSTANCES, eval_dir=folder / "eval", workers=2)
    return folder


@pytest.fixture(scope="module")
def groups(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("oracle")
    return {
        "oec": generate(base / "oec", [SABOTAGE, "<function=bash><parameter=command>ls</parameter></function>"], 2),
        "expert": generate(base / "expert", [], 0, FC_EXPERT_TOOLS),
    }


def test_the_oracle_resolves_from_the_state_the_student_left(groups):
    for iid in one_per_repo():
        assert read_report(groups["oec"] / "eval" / iid / "report.json").resolved, iid
        trajectory = load_trajectory(traj_path(groups["oec"] / "run", iid))
        assert trajectory.step_roles()[:2] == ["student", "student"]
        assert {step.model_name for step in trajectory.trajectory[2:]} == {"oracle"}
        assert "repro.py" not in trajectory.info.submission


def test_submissions_apply_cleanly_to_a_fresh_task_workspace(groups, tmp_path):
    instances = {instance.instance_id: instance for instance in load_instances(INSTANCES)}
    for iid in one_per_repo():
        workspace = build_workspace(instances[iid], tmp_path / iid).path
        patch = tmp_path / f"{iid}.patch"
        patch.write_text(load_trajectory(traj_path(groups["oec"] / "run", iid)).info.submission)
        subprocess.run(["git", "apply", "--check", str(patch)], cwd=workspace, check=True)


def test_the_oracle_speaks_native_function_calling_when_the_expert_uses_it(groups):
    for iid in one_per_repo():
        assert read_report(groups["expert"] / "eval" / iid / "report.json").resolved, iid
        trajectory = load_trajectory(traj_path(groups["expert"] / "run", iid))
        assert all(message.tool_calls for message in trajectory.assistant_messages())
        assert trajectory.info.oec.switched_at_step == 0


def test_resolved_oec_rollouts_become_sft_rows_that_train_only_expert_turns(groups, tmp_path):
    output = tmp_path / "sft.jsonl"
    summary = convert(ConvertOptions(runs=[str(groups["oec"] / "run")], evals=[str(groups["oec"] / "eval")],
                                     output=output, val_fraction=0.0), show_progress=False)
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == len(one_per_repo()) and summary["warnings"].get("oracle_turns")
    for row in rows:
        weights = [message["weight"] for message in row["messages"] if message["role"] == "assistant"]
        assert row["model_switch_idx"] == 2 and row["resolved"] is True
        assert weights[:2] == [0, 0] and set(weights[2:]) == {1}
        assert all("weight" not in message for message in row["messages"] if message["role"] != "assistant")


def test_the_rollouts_appear_in_the_covariate_shift_outputs(groups, tmp_path):
    config = load_config([], [("groups", {"expert": str(groups["expert"] / "run"), "oec": str(groups["oec"] / "run")}),
                              ("reference", "expert"), ("output_dir", str(tmp_path / "shift")),
                              ("bootstrap.replicates", 50), ("metrics.permutations", 50)])
    run_analysis(config, progress=False)
    with (tmp_path / "shift" / "frechet.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["group"] for row in rows} >= {"oec"}
    assert (tmp_path / "shift" / "plots" / "frechet_median.png").stat().st_size > 10_000
    assert (tmp_path / "shift" / "plots" / "frechet_median.pdf").is_file()
