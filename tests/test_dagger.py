"""dagger_loop: stages resume where a killed loop stopped, the per-round metrics read real run files, and the overrides
that make the student-alone and expert-alone groups are valid for the demo config."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from oec.sft.prompt import load_student_prompt
from oec.sft.synthetic import StepSpec, build_trajectory
from oec.training.dagger import EXPERT_ALONE, STUDENT_ALONE, DaggerConfig, Round, load_dagger_config, well_formed_rate
from oec.training.errors import TrainingError
from sweagent.run.config_loading import build_config, parse_cli, resolve_config_path
from sweagent.run.run_batch import RunBatchConfig
from sweagent.tools.parsing import ToolCall
from sweagent.trajectory import traj_path

REPO = Path(__file__).resolve().parents[1]


def test_a_killed_round_reruns_only_the_stage_it_was_in(tmp_path):
    config = DaggerConfig(loop_dir=tmp_path)
    calls: list[str] = []

    def stage(name: str, fail: bool = False):
        def action():
            calls.append(name)
            if fail:
                raise TrainingError(f"{name} was killed")
            return {"made": name}
        return action

    first = Round(config, 0, Console(quiet=True))
    first.run_stage("generate", stage("generate"))
    with pytest.raises(TrainingError):
        first.run_stage("evaluate", stage("evaluate", fail=True))
    again = Round(config, 0, Console(quiet=True))  # a new process reads the manifest
    again.run_stage("generate", stage("generate"))
    again.run_stage("evaluate", stage("evaluate"))
    assert calls == ["generate", "evaluate", "evaluate"]
    stages = again.manifest["stages"]
    assert stages["generate"]["made"] == "generate" and stages["evaluate"]["done"] and "seconds" in stages["evaluate"]
    assert again.manifest["student"] == "student" and again.manifest["next_student"] == "dagger_r1"


def test_the_group_overrides_are_valid_for_the_demo_config():
    files = [resolve_config_path("config/local_oracle_demo.yaml")]
    expert = build_config(RunBatchConfig, files, parse_cli(EXPERT_ALONE)[1]).agent.model.switch
    student = build_config(RunBatchConfig, files, parse_cli(STUDENT_ALONE)[1]).agent.model.switch
    assert (expert.type, expert.step, student.type) == ("step_count", 0, "never")


def test_the_well_formed_rate_counts_parsed_student_steps_per_student_call(tmp_path):
    commands = load_student_prompt().commands
    for traj_id, calls in (("pkg__a", 4), ("pkg__b", 2)):
        specs = [StepSpec("student", ToolCall("bash", {"command": "ls"}), "x"), StepSpec("student", ToolCall("submit", {}))]
        trajectory = build_trajectory(traj_id, specs, commands)
        trajectory.info.oec.student.stats = {"api_calls": calls}  # 2 steps each: the rest were malformed answers
        trajectory.save(traj_path(tmp_path, traj_id))
    assert well_formed_rate(tmp_path) == round(4 / 6, 3)
    assert well_formed_rate(tmp_path / "nothing") is None


def test_the_loop_config_is_loaded_like_every_other_config(tmp_path):
    config = load_dagger_config(["--config", str(REPO / "config/train/dagger_demo.yaml"), "--loop_dir", str(tmp_path),
                                 "--rounds", "3", "--train_overrides", "{max_steps: 2}"])
    assert config.rounds == 3 and config.train_overrides == {"max_steps": 2} and config.data == "accumulate"
