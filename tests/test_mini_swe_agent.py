"""Real mini-swe-agent trajectories (tests/fixtures/mini_swe_agent, written by the mini-swe-agent package) are
single-model trajectories to every stage: read as SWE-agent steps, graded from their preds.json, turned into SFT
rows, embedded by the covariate-shift analysis, shown to the failure judge and listed by the inspector."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from covariate_shift_analysis.analysis import run_analysis
from covariate_shift_analysis.config import load_config
from failure_categorization.cli import main as categorize_main
from oec.evaluation.run import evaluate_run
from oec.sft.pipeline import ConvertOptions, convert
from oec.sft.prompt import DEFAULT_PROMPT_CONFIG
from oec.sft.synthetic import StepSpec, build_trajectory, write_trajectory
from sweagent.inspector.index import build_index
from sweagent.tools.parsing import ToolCall
from sweagent.trajectory import iter_trajectory_files, load_trajectory
from inspector_runs import COMMANDS, FIXTURES, MINI_RESOLVED

REPO = Path(__file__).resolve().parents[1]
INSTANCES = REPO / "config/demo/instances.json"
MINI_LOCAL = "mewwts__addict.75284f95.func_pm_remove_assign__210n2kyn"
FIX_COMMAND = "sed -i '23s/^            pass$/            __self[key] = __self._hook(val)/' addict/addict.py"


def fixture_file(version: str, instance_id: str) -> Path:
    return FIXTURES / version / instance_id / f"{instance_id}.traj.json"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_mini_swe_agent_rollout_reads_as_single_model_steps_ending_in_submit(version: str) -> None:
    trajectory = load_trajectory(fixture_file(version, MINI_RESOLVED))
    steps = trajectory.trajectory
    assert trajectory.info.exit_status == "submitted" and "__self[key] = __self._hook(val)" in trajectory.info.submission
    assert len(steps) == 4 and set(trajectory.step_roles()) == {"expert"}  # v1's answer without a command is no step
    assert FIX_COMMAND in steps[1].action and "```" not in steps[1].thought and steps[1].thought
    assert "__self[key] = __self._hook(val)" in steps[1].observation
    assert steps[-1].action == "submit"
    assert "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT" in steps[-1].extra_info["mini_swe_agent_command"]
    assert steps[-1].observation == trajectory.info.submission
    assert {step.model_name for step in steps} == {"deterministic" if version == "v1" else "deterministic_toolcall"}
    assert [message.role for message in trajectory.history][:2] == ["system", "user"]
    assert set(load_trajectory(fixture_file(version, MINI_RESOLVED), "student").step_roles()) == {"student"}


def test_mini_swe_agent_format_errors_and_exits_keep_their_meaning() -> None:
    empty_submit = load_trajectory(fixture_file("v1", MINI_LOCAL))
    assert empty_submit.info.exit_status == "submitted" and empty_submit.info.submission is None
    assert [step.action for step in empty_submit.trajectory] == ["submit"]
    assert any("EXACTLY ONE action" in message.text for message in empty_submit.history)
    no_tool_call = load_trajectory(fixture_file("v2", MINI_LOCAL))
    assert no_tool_call.info.exit_status == "exit_format" and no_tool_call.trajectory == []
    assert no_tool_call.info.mini_swe_agent["exit_status"] == "RepeatedFormatError"


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, Path]:
    """Both fixture runs copied to a scratch folder and graded by the real local harness from their preds.json."""
    root = tmp_path_factory.mktemp("mini")
    for version in ("v1", "v2"):
        shutil.copytree(FIXTURES / version, root / version)
        evaluate_run(root / version, instances_file=INSTANCES, eval_dir=root / f"{version}-eval", workers=2)
    return {"root": root, **{version: root / version for version in ("v1", "v2")}}


@pytest.mark.slow
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_mini_swe_agent_predictions_are_graded_and_summarised_by_exit_status(graded: dict[str, Path], version: str) -> None:
    eval_dir = graded["root"] / f"{version}-eval"
    assert json.loads((eval_dir / MINI_RESOLVED / "report.json").read_text())["resolved"] is True
    assert json.loads((eval_dir / MINI_LOCAL / "report.json").read_text())["resolved"] is False
    summary = json.loads((eval_dir / "summary.json").read_text())
    assert summary["resolved"] == 1 and summary["total"] == 2
    assert summary["by_exit_status"]["submitted"]["resolved"] == 1
    assert set(summary["by_exit_status"]) <= {"submitted", "exit_format"}
    index = build_index([graded[version]], [eval_dir])
    assert {rollout.traj_id: rollout.resolved for rollout in index.rollouts} == {MINI_RESOLVED: True, MINI_LOCAL: False}
    assert {rollout.file_format for rollout in index.rollouts} == {"mini-swe-agent"}


@pytest.mark.slow
def test_resolved_mini_swe_agent_rollouts_become_sft_rows_that_train_every_turn(graded: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "sft.jsonl"
    summary = convert(ConvertOptions(runs=[str(graded["v1"]), str(graded["v2"])],
                                     evals=[str(graded["root"] / "v1-eval"), str(graded["root"] / "v2-eval")],
                                     instances=[str(INSTANCES)], output=output, val_fraction=0.0,
                                     prompt_config=DEFAULT_PROMPT_CONFIG), show_progress=False)  # mini records no agent config
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["traj_id"] for row in rows] == [MINI_RESOLVED, MINI_RESOLVED] and summary["dropped"] == {"unresolved": 2}
    for row in rows:
        assistants = [message for message in row["messages"] if message["role"] == "assistant"]
        assert row["model_switch_idx"] == 0 and [message["weight"] for message in assistants] == [1, 1, 1, 1]
        assert FIX_COMMAND in assistants[1]["content"] and "<function=submit>" in assistants[-1]["content"]
        assert "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT" not in json.dumps(row)


@pytest.mark.slow
def test_the_failure_judge_is_shown_the_failed_mini_swe_agent_rollouts(graded: dict[str, Path], capsys) -> None:
    for version in ("v1", "v2"):
        code = categorize_main(["categorize", "--run_dir", str(graded[version]), "--eval_dir",
                                str(graded["root"] / f"{version}-eval"), "--instances", str(INSTANCES), "--dry_run"])
        captured = capsys.readouterr()
        assert code == 0 and "1 prompts would be sent" in captured.err
        assert "test_setdefault_nested" in captured.out  # the failed instance's problem statement
        assert ("exit_format" if version == "v2" else "submit") in captured.out


@pytest.mark.slow
def test_the_covariate_shift_analysis_embeds_every_mini_swe_agent_turn(graded: dict[str, Path], tmp_path: Path) -> None:
    reference = tmp_path / "oec"
    calls = [ToolCall("bash", {"command": "grep -n kwargs addict/addict.py"}),
             ToolCall("bash", {"command": "python -m pytest -q"})]
    for instance_id in (MINI_RESOLVED, MINI_LOCAL):
        for rollout in range(2):
            specs = [StepSpec(role, call, f"output {rollout}.{index}", "look") for index, (role, call) in
                     enumerate(zip(("student", "expert"), calls))] + [StepSpec("expert", ToolCall("submit", {}))]
            write_trajectory(reference, None, f"{instance_id}__r{rollout}", build_trajectory(instance_id, specs, COMMANDS), True)
    mini_runs = [str(graded["v1"]), str(graded["v2"])]
    config = load_config([], [("groups", {"oec": str(reference), "mini": {"run_dirs": mini_runs}}), ("reference", "oec"),
                              ("output_dir", str(tmp_path / "shift")), ("embedding.cache_dir", str(tmp_path / "cache")),
                              ("bootstrap.replicates", 20), ("metrics.permutations", 20), ("metrics.min_samples_per_turn", 2)])
    run_analysis(config, progress=False)
    with (tmp_path / "shift" / "turn_counts.csv").open() as handle:
        counts = [row for row in csv.DictReader(handle) if row["group"] == "mini"]
    mini_steps = sum(len(load_trajectory(path).trajectory) for run in mini_runs for path in iter_trajectory_files(run))
    assert mini_steps == 9 and sum(int(row["trajectories"]) for row in counts) == mini_steps
    assert {float(row["expert_share"]) for row in counts} == {1.0}
