"""On-policy expert corrections: the switch point, its reproducibility, and the hand-over of the history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sweagent.agent.switching.schedules import RandomStepRange
from sweagent.agent.switching_model import RolePlan
from sweagent.run.config_loading import ConfigError, build_config
from sweagent.run.run_single import RunSingleConfig
from conftest import BUNDLES, SUBMIT_XML, run_switching, xml

REPO = Path(__file__).resolve().parents[1]


def native(command: str, call_id: str) -> dict:
    return {"content": "", "tool_calls": [{"id": call_id, "type": "function",
                                           "function": {"name": "bash", "arguments": json.dumps({"command": command})}}]}


def test_the_expert_takes_exactly_the_drawn_step(tmp_path, repo):
    trajectory = run_switching(tmp_path, repo, [xml("echo s0"), xml("echo s1"), xml("echo never")],
                               [xml("echo e2"), SUBMIT_XML], {"type": "step_count", "step": 2})
    assert [s.model_role for s in trajectory.trajectory] == ["student", "student", "expert", "expert"]
    assert [s.model_name for s in trajectory.trajectory] == ["tiny-student"] * 2 + ["big-expert"] * 2
    oec = trajectory.info.oec
    assert (oec.switch_type, oec.switch_step_drawn, oec.switched_at_step) == ("step_count", 2, 2)
    assert oec.student.stats["api_calls"] == 2 and oec.expert.stats["api_calls"] == 2
    roles = [m.model_role for m in trajectory.assistant_messages()]
    assert roles == ["student", "student", "expert", "expert"]


def test_k_zero_is_a_pure_expert_rollout(tmp_path, repo):
    trajectory = run_switching(tmp_path, repo, [xml("echo never")], [xml("echo e0"), SUBMIT_XML], {"type": "step_count", "step": 0})
    assert {s.model_role for s in trajectory.trajectory} == {"expert"}
    assert trajectory.info.oec.switched_at_step == 0
    assert trajectory.info.oec.student.stats["api_calls"] == 0


def test_a_student_that_submits_before_the_switch_is_a_pure_student_rollout(tmp_path, repo):
    trajectory = run_switching(tmp_path, repo, [xml("echo s0"), SUBMIT_XML], [xml("echo never")], {"type": "step_count", "step": 5})
    assert {s.model_role for s in trajectory.trajectory} == {"student"}
    assert trajectory.info.exit_status == "submitted"
    assert trajectory.info.oec.switched_at_step is None and trajectory.info.oec.switch_step_drawn == 5


def test_switch_points_are_reproducible_per_seed_and_rollout():
    switch = RandomStepRange(start=0, end=30)
    ids = [f"inst__r{k}" for k in range(40)]
    first = [RolePlan(switch, 7, traj_id).switch_step_drawn for traj_id in ids]
    assert first == [RolePlan(switch, 7, traj_id).switch_step_drawn for traj_id in ids]
    assert all(0 <= k <= 30 for k in first) and len(set(first)) > 5
    assert first != [RolePlan(switch, 8, traj_id).switch_step_drawn for traj_id in ids]


def test_random_step_range_run_records_the_drawn_step(tmp_path, repo):
    switch = {"type": "random_step_range", "start": 1, "end": 3}
    drawn = RolePlan(RandomStepRange(**switch), 11, "proj").switch_step_drawn
    trajectory = run_switching(tmp_path, repo, [xml(f"echo s{i}") for i in range(drawn)], [xml("echo e"), SUBMIT_XML], switch, seed=11)
    assert trajectory.info.oec.switch_step_drawn == drawn == trajectory.info.oec.switched_at_step
    assert trajectory.info.oec.seed == 11


def test_a_stuck_student_hands_over_early(tmp_path, repo):
    switch = {"type": "step_count", "step": 10, "stuck": {"repeated_actions": 2, "consecutive_format_errors": None}}
    trajectory = run_switching(tmp_path, repo, [xml("ls"), xml("ls"), xml("ls")], [SUBMIT_XML], switch)
    assert trajectory.info.oec.switched_at_step == 2
    assert [s.model_role for s in trajectory.trajectory] == ["student", "student", "expert"]


def test_repeats_that_differ_only_by_escapes_and_whitespace_count_as_one_stuck_action(tmp_path, repo):
    switch = {"type": "step_count", "step": 10, "stuck": {"repeated_actions": 3, "consecutive_format_errors": None}}
    escaped = ["echo {'a': 2}", "echo  {\\'a\\': 2}", "echo {\\\\\\'a\\\\\\': 2}\n"]
    trajectory = run_switching(tmp_path, repo, [xml(action) for action in escaped], [SUBMIT_XML], switch)
    assert [s.model_role for s in trajectory.trajectory] == ["student", "student", "student", "expert"]


def test_student_format_errors_trigger_the_switch_mid_step(tmp_path, repo):
    switch = {"type": "step_count", "step": 10, "stuck": {"repeated_actions": None, "consecutive_format_errors": 2}}
    trajectory = run_switching(tmp_path, repo, ["nonsense", "more nonsense"], [SUBMIT_XML], switch)
    assert trajectory.info.exit_status == "submitted"
    assert trajectory.info.oec.switched_at_step == 0


def test_xml_history_becomes_native_tool_calls_for_a_function_calling_expert(tmp_path, repo):
    expert_bundles = [{"path": "tools/registry"}, {"path": "tools/edit_anthropic"}, {"path": "tools/review_on_submit_m"}]
    expert_member = {"tools": {"bundles": expert_bundles,
                               "parse_function": {"type": "function_calling"}},
                     "templates": {"system_template": "You are the expert."}}
    submit = {"content": "", "tool_calls": [{"id": "c9", "type": "function", "function": {"name": "submit", "arguments": "{}"}}]}
    trajectory = run_switching(tmp_path, repo, [xml("echo from-student > note.txt")],
                               [native("cat note.txt", "c1"), submit, submit], {"type": "step_count", "step": 1},
                               expert_member=expert_member)
    assert trajectory.info.exit_status == "submitted"
    history = trajectory.history
    assert history[0].text == "You are the expert."  # re-rendered with the expert's templates
    student_turn = trajectory.assistant_messages()[0]
    assert student_turn.model_role == "student" and student_turn.tool_calls[0]["function"]["name"] == "bash"
    assert json.loads(student_turn.tool_calls[0]["function"]["arguments"]) == {"command": "echo from-student > note.txt"}
    tool_messages = [m for m in history if m.role == "tool"]
    assert tool_messages[0].tool_call_ids == [student_turn.tool_calls[0]["id"]]
    # The expert's review stage (review_on_submit_m, installed at the switch) asked for a second submit.
    assert "diff" in trajectory.trajectory[2].observation.lower()
    assert "from-student" in trajectory.info.submission


def test_incompatible_switching_config_is_rejected_at_load_time(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"agent": {"model": {"type": "switching", "models": [{"name": "a"}],
                                                        "switch": {"type": "step_count", "step": 1}}}}))
    with pytest.raises(ConfigError, match="exactly two models"):
        build_config(RunSingleConfig, [bad], [])
    bad.write_text(yaml.safe_dump({"agent": {"model": {"type": "switching", "models": [{"name": "a"}, {"name": "b"}],
                                                        "switch": {"type": "random_step_range", "start": 5, "end": 2}}}}))
    with pytest.raises(ConfigError, match="start <= end"):
        build_config(RunSingleConfig, [bad], [])


def test_two_bundles_defining_the_same_command_are_rejected(tmp_path):
    bad = tmp_path / "dup.yaml"
    bad.write_text(yaml.safe_dump({"agent": {"tools": {"bundles": BUNDLES + [{"path": "tools/review_on_submit_m"}]},
                                             "model": {"name": "x"}}}))
    with pytest.raises(ConfigError, match="'submit' is defined twice"):
        build_config(RunSingleConfig, [bad], [])


@pytest.mark.parametrize("name", ["default.yaml", "local_demo.yaml", "qwen32b_switch_claude_python_tools.yaml", "openai_switching_test.yaml"])
def test_every_shipped_config_loads(name, monkeypatch):
    from sweagent.run.run_batch import RunBatchConfig

    config = build_config(RunBatchConfig, [REPO / "config" / name], [])
    assert config.agent.tools.commands
    if name.startswith("qwen32b"):
        student, expert = config.agent.model.models
        assert config.agent.history_processors[0].n == 5 and student.model.per_instance_call_limit == 75
        assert expert.model.per_instance_cost_limit == 2.0 and expert.tools.parse_function.type == "function_calling"
        assert (config.agent.model.switch.start, config.agent.model.switch.end) == (0, 30)


def test_token_and_cost_schedules_switch_once_the_student_has_spent_its_budget(tmp_path):
    from sweagent.agent.agents import AgentConfig
    from sweagent.agent.switching_model import SwitchingModelConfig

    (tmp_path / "r.yaml").write_text(yaml.safe_dump([SUBMIT_XML]))
    members = [{"model": {"type": "replay", "replay_path": str(tmp_path / "r.yaml")}}] * 2
    for switch, spend in (({"type": "token_count", "tokens": 1000}, {"tokens_sent": 900, "tokens_received": 100}),
                          ({"type": "cost", "cost": 0.5}, {"instance_cost": 0.5})):
        config = SwitchingModelConfig(models=members, switch=switch)
        switcher = config.build(AgentConfig(model=config), instance_id="x", seed=0, traj_id="x")
        assert switcher.plan.switch_step_drawn is None and switcher.profile_for_step(50) is switcher.student
        for key, value in spend.items():
            setattr(switcher.student.model.stats, key, value)
        assert switcher.profile_for_step(51) is switcher.expert


def test_never_means_a_pure_student_rollout_even_when_it_is_stuck(tmp_path, repo):
    switch = {"type": "never", "stuck": {"repeated_actions": 2, "consecutive_format_errors": 2}}
    trajectory = run_switching(tmp_path, repo, [xml("ls"), xml("ls"), xml("ls"), SUBMIT_XML], [xml("echo never")], switch)
    assert set(trajectory.step_roles()) == {"student"} and trajectory.info.oec.switched_at_step is None


def test_the_rollout_table_shows_the_switch_steps_by_role_and_keeps_every_column_in_a_log(tmp_path: Path, repo: Path) -> None:
    """`scripts/rollout_summary.py`, which generate_oec.sh ends with: one row per rollout, nothing cut when the output
    goes to a file (a user's log) rather than a terminal."""
    run_switching(tmp_path, repo, [xml("echo s0"), xml("echo s1"), xml("echo never")], [xml("echo e0"), SUBMIT_XML],
                  {"type": "step_count", "step": 2})
    script = REPO / "scripts" / "rollout_summary.py"
    table = subprocess.run([sys.executable, str(script), str(tmp_path / "out")], capture_output=True, text=True, check=True).stdout
    header = next(line for line in table.splitlines() if "rollout" in line and "wall s" in line)
    row = next(line for line in table.splitlines() if "│ proj " in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert "exit status" in header and "patch lines" in header
    assert cells[:9] == ["proj", "2", "2", "2", "2", "2/2", "2/2", "submitted", "0"] and cells[9].isdigit()
