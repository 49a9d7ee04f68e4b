"""Generation schemes keep their promises: over many seeded rollouts the realised hand-overs follow the configured
distribution (chi-square, p > 0.01 on 1,000 draws), a rerun reproduces every hand-over, and a replay run takes
exactly the role sequence the schedule implies."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from pydantic import TypeAdapter
from scipy import stats

from sweagent.agent.models import InstanceStats
from sweagent.agent.switching.schedules import SwitchSchedule
from sweagent.agent.switching_model import RolePlan
from conftest import SUBMIT_XML, run_switching, xml

DRAWS = 1000
STEPS = 40
SEED = 3
schedule = TypeAdapter(SwitchSchedule).validate_python


def realised(switch: dict, traj_id: str, seed: int = SEED, usage: list[InstanceStats] | None = None,
             steps: int = STEPS) -> tuple[list, RolePlan]:
    """The role of every step of one rollout, as the agent's loop asks for them (distinct actions: never stuck)."""
    plan = RolePlan(schedule(switch), seed, traj_id)
    roles = []
    for step in range(steps):
        role = plan.role_for(step, usage[step] if usage else InstanceStats())
        if role is None:
            break
        roles.append(role)
        plan.after_step(f"echo {step}")
    return roles, plan


def rollouts(switch: dict, **kwargs) -> list[tuple[list, RolePlan]]:
    return [realised(switch, f"inst__r{k}", **kwargs) for k in range(DRAWS)]


def uniform_fit(values: list[int], low: int, high: int) -> float:
    """p-value of the chi-square test that `values` are uniform on [low, high]."""
    counts = Counter(values)
    assert set(counts) <= set(range(low, high + 1))
    return stats.chisquare([counts.get(v, 0) for v in range(low, high + 1)]).pvalue


def stretches(roles: list[str], role: str) -> list[int]:
    """Lengths of the maximal runs of `role`, in order."""
    runs, length = [], 0
    for current in [*roles, None]:
        if current == role:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    return runs


def test_random_step_range_switches_uniformly_over_the_range():
    switch = {"type": "random_step_range", "start": 2, "end": 12}
    firsts = [roles.index("expert") for roles, _ in rollouts(switch)]
    assert uniform_fit(firsts, 2, 12) > 0.01
    assert all(set(roles[k:]) == {"expert"} for (roles, _), k in zip(rollouts(switch), firsts))


def test_step_count_and_never_are_point_masses():
    assert {roles.index("expert") for roles, _ in rollouts({"type": "step_count", "step": 4})} == {4}
    assert all(set(roles) == {"student"} and not plan.handovers for roles, plan in rollouts({"type": "never"}))


@pytest.mark.parametrize("switch, field", [({"type": "token_count", "tokens": 3000}, "tokens_sent"),
                                           ({"type": "cost", "cost": 0.3}, "instance_cost")])
def test_budget_schedules_switch_at_the_first_step_past_the_budget(switch, field):
    rng = random.Random(0)
    for k in range(DRAWS):
        spent, usage = 0.0, []
        for _ in range(STEPS):
            usage.append(InstanceStats(**{field: type(getattr(InstanceStats(), field))(spent)}))
            spent += rng.uniform(0, 600) if field == "tokens_sent" else rng.uniform(0, 0.06)
        budget = switch.get("tokens", switch.get("cost"))
        crossing = next((step for step, u in enumerate(usage) if getattr(u, field) >= budget), None)
        roles, _ = realised(switch, f"inst__r{k}", usage=usage)
        assert (roles.index("expert") if "expert" in roles else None) == crossing


def test_expert_windows_draw_the_student_stretches_and_window_lengths_uniformly():
    switch = {"type": "expert_window", "start": 1, "end": 6, "window": {"start": 2, "end": 5}, "max_windows": 2}
    runs = rollouts(switch)
    first_student = [stretches(roles, "student")[0] for roles, _ in runs]
    windows = [stretches(roles, "expert") for roles, _ in runs]
    assert all(len(w) == 2 for w in windows)  # 6 + 5 + 6 + 5 < STEPS: both windows always happen
    assert uniform_fit(first_student, 1, 6) > 0.01
    assert uniform_fit([w[0] for w in windows], 2, 5) > 0.01 and uniform_fit([w[1] for w in windows], 2, 5) > 0.01
    assert uniform_fit([stretches(roles, "student")[1] for roles, _ in runs], 1, 6) > 0.01
    for roles, plan in runs[:50]:
        assert [(h.from_role, h.to_role) for h in plan.handovers] == [("student", "expert"), ("expert", "student")] * 2
        assert plan.draws.recorded["switch_step"] == plan.handovers[0].step == plan.switch_step_drawn


def test_an_expert_window_hands_over_where_random_step_range_does():
    window = {"type": "expert_window", "start": 0, "end": 9, "window": 2}
    one_switch = {"type": "random_step_range", "start": 0, "end": 9}
    assert all(w.index("expert") == o.index("expert")
               for (w, _), (o, _) in zip(rollouts(window)[:200], rollouts(one_switch)[:200]))


def test_a_teacher_continuation_ends_the_rollout_after_the_window():
    runs = rollouts({"type": "expert_window", "start": 1, "end": 4, "window": 3, "end_after_window": True})
    assert all(roles[-3:] == ["expert"] * 3 and stretches(roles, "expert") == [3] for roles, _ in runs)


@pytest.mark.parametrize("beta, round_, expected", [(0.3, 0, 0.3), ([0.9, 0.5, 0.2], 1, 0.5), ([0.9, 0.5, 0.2], 7, 0.2)])
def test_mixture_gives_each_step_to_the_expert_with_probability_beta(beta, round_, expected):
    n = 10
    runs = rollouts({"type": "mixture", "beta": beta, "round": round_}, steps=n)
    expert_steps = Counter(roles[:n].count("expert") for roles, _ in runs)
    pmf = stats.binom.pmf(range(n + 1), n, expected)
    observed, wanted, low_o, low_e = [], [], 0, 0.0
    for k in range(n + 1):  # pool the sparse tails so every bin expects at least 5
        low_o, low_e = low_o + expert_steps.get(k, 0), low_e + pmf[k] * DRAWS
        if low_e >= 5:
            observed.append(low_o)
            wanted.append(low_e)
            low_o, low_e = 0, 0.0
    observed[-1] += low_o
    wanted[-1] += low_e
    assert stats.chisquare(observed, wanted).pvalue > 0.01
    assert runs[0][1].recorded_draws()["beta"] == expected


@pytest.mark.parametrize("switch", [
    {"type": "random_step_range", "start": 0, "end": 30},
    {"type": "expert_window", "start": 0, "end": 5, "window": {"start": 1, "end": 4}, "max_windows": 3},
    {"type": "mixture", "beta": 0.4},
])
def test_a_rerun_reproduces_every_handover_and_another_seed_does_not(switch):
    def handovers(seed: int) -> list:
        return [realised(switch, f"inst__r{k}", seed=seed)[1].handovers for k in range(100)]

    assert handovers(SEED) == handovers(SEED)
    assert handovers(SEED) != handovers(SEED + 1)


def test_a_stuck_student_opens_the_window_early_and_gets_the_rollout_back(tmp_path, repo):
    switch = {"type": "expert_window", "start": 9, "end": 9, "window": 1,
              "stuck": {"repeated_actions": 2, "consecutive_format_errors": None}}
    trajectory = run_switching(tmp_path, repo, [xml("ls"), xml("ls"), xml("echo back"), SUBMIT_XML], [xml("echo e")], switch)
    assert trajectory.step_roles() == ["student", "student", "expert", "student", "student"]
    assert [h.reason for h in trajectory.info.oec.handovers] == ["same action 2 times in a row", "schedule"]


@pytest.mark.parametrize("switch", [
    {"type": "expert_window", "start": 1, "end": 3, "window": {"start": 1, "end": 3}, "max_windows": 2},
    {"type": "mixture", "beta": 0.5},
])
def test_a_replay_run_takes_exactly_the_role_sequence_the_schedule_implies(tmp_path, repo, switch):
    expected, _ = realised(switch, "proj", seed=5)
    expected = expected[:8]
    student = [xml(f"echo s{i}") for i in range(expected.count("student"))]
    expert = [xml(f"echo e{i}") for i in range(expected.count("expert"))]
    (student if expected[-1] == "student" else expert)[-1] = SUBMIT_XML
    trajectory = run_switching(tmp_path, repo, student, expert, switch, seed=5)
    assert trajectory.info.exit_status == "submitted"
    assert trajectory.step_roles() == expected
    assert [m.model_role for m in trajectory.assistant_messages()] == expected
    oec = trajectory.info.oec
    changes = [step for step in range(1, len(expected)) if expected[step] != expected[step - 1]]
    assert [h.step for h in oec.handovers if h.step > 0] == changes
    assert oec.switched_at_step == expected.index("expert")


def test_a_teacher_continuation_run_ends_with_exit_schedule_and_the_diff(tmp_path, repo):
    switch = {"type": "expert_window", "start": 1, "end": 1, "window": 2, "end_after_window": True}
    trajectory = run_switching(tmp_path, repo, [xml("echo s0"), xml("echo never")],
                               [xml("echo e1"), xml("echo fixed > a.py"), xml("echo never")], switch)
    assert trajectory.step_roles() == ["student", "expert", "expert"]
    assert trajectory.info.exit_status == "exit_schedule" and "fixed" in trajectory.info.submission


@pytest.mark.parametrize("bad, key", [
    ({"type": "mixture", "beta": 1.5}, "beta"),
    ({"type": "expert_window", "start": 1, "end": 2, "window": 0}, "window"),
    ({"type": "expert_window", "start": 1, "end": 2, "max_windows": 0}, "max_windows"),
    ({"type": "sometimes"}, "switch"),
])
def test_a_bad_schedule_is_one_line_naming_the_key(tmp_path, bad, key):
    import yaml

    from sweagent.run.config_loading import ConfigError, build_config
    from sweagent.run.run_single import RunSingleConfig

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"agent": {"model": {"type": "switching", "models": [{"name": "a"}, {"name": "b"}], "switch": bad}}}))
    with pytest.raises(ConfigError) as error:
        build_config(RunSingleConfig, [path], [])
    assert "\n" not in str(error.value) and key in str(error.value)


def test_interleaved_rollouts_become_sft_rows_weighted_by_each_turns_role(tmp_path, repo):
    from oec.sft.pipeline import ConvertOptions, convert
    from oec.sft.synthetic import write_trajectory

    switch = {"type": "mixture", "beta": 0.5}
    expected, _ = realised(switch, "proj", seed=0)
    expected = expected[:8]
    assert expected[0] == "student" and "student" in expected[expected.index("expert"):]  # truly interleaved
    student = [xml(f"echo s{i} > s{i}.txt") for i in range(expected.count("student"))]
    expert = [xml(f"echo e{i} >> a.py") for i in range(expected.count("expert"))]
    (student if expected[-1] == "student" else expert)[-1] = SUBMIT_XML
    trajectory = run_switching(tmp_path, repo, student, expert, switch, seed=0)
    write_trajectory(tmp_path / "run", tmp_path / "eval", "proj", trajectory, resolved=True)
    convert(ConvertOptions(runs=[str(tmp_path / "run")], evals=[str(tmp_path / "eval")], output=tmp_path / "sft.jsonl",
                           val_fraction=0.0), show_progress=False)
    [row] = [json.loads(line) for line in (tmp_path / "sft.jsonl").read_text().splitlines()]
    assistants = [m for m in row["messages"] if m["role"] == "assistant"]
    assert [m["weight"] for m in assistants] == [int(role == "expert") for role in expected]
    assert row["model_switch_idx"] == expected.index("expert")
    assert all(f"e{i} >> a.py" in m["content"] for i, m in enumerate(m for m in assistants if m["weight"] and "submit" not in m["content"]))


@pytest.mark.parametrize("overlay, switch_type", [("one_switch", "random_step_range"), ("expert_window", "expert_window"),
                                                  ("teacher_continuation", "expert_window"), ("mixture", "mixture"),
                                                  ("branching", "random_step_range")])
def test_every_scheme_overlay_loads_on_the_oracle_demo_config(overlay, switch_type):
    from sweagent.run.config_loading import build_config
    from sweagent.run.run_batch import RunBatchConfig

    config_dir = Path(__file__).resolve().parents[1] / "config"
    config = build_config(RunBatchConfig, [config_dir / "local_oracle_demo.yaml", config_dir / "schemes" / f"{overlay}.yaml"], [])
    assert config.agent.model.switch.type == switch_type
    assert config.output_dir == Path("trajectories/schemes") / overlay  # its own run dir, for compare_schemes.py
    assert config.branches == (3 if overlay == "branching" else 1)


def test_after_a_window_the_student_gets_its_own_prompt_and_format_back(tmp_path, repo):
    expert_member = {"tools": {"bundles": [{"path": "tools/registry"}, {"path": "tools/edit_anthropic"}, {"path": "tools/submit"}],
                               "parse_function": {"type": "function_calling"}},
                     "templates": {"system_template": "You are the expert."}}
    native = {"content": "", "tool_calls": [{"id": "c1", "type": "function",
                                             "function": {"name": "bash", "arguments": json.dumps({"command": "echo e1"})}}]}
    switch = {"type": "expert_window", "start": 1, "end": 1, "window": 1}
    trajectory = run_switching(tmp_path, repo, [xml("echo s0"), SUBMIT_XML], [native], switch, expert_member=expert_member)
    assert trajectory.step_roles() == ["student", "expert", "student"] and trajectory.info.exit_status == "submitted"
    assert trajectory.history[0].text != "You are the expert."  # the student's templates again
    expert_turn = trajectory.assistant_messages()[1]
    assert expert_turn.model_role == "expert" and not getattr(expert_turn, "tool_calls", None) and "echo e1" in expert_turn.text
    assert not any(m.role == "tool" for m in trajectory.history)  # observations are user messages for the XML student
    assert trajectory.trajectory[1].extra_info["tool_calls"][0]["id"] == "c1"  # the step keeps what the expert sent


def test_the_comparison_table_counts_resolved_rollouts_and_expert_spend_per_resolved_one(tmp_path, repo, capsys):
    import runpy

    from oec.sft.synthetic import write_trajectory

    switch = {"type": "expert_window", "start": 1, "end": 1, "window": 2}
    trajectory = run_switching(tmp_path, repo, [xml("echo s0"), SUBMIT_XML], [xml("echo e1"), xml("echo e2")], switch)
    for traj_id, resolved in (("proj__r0", True), ("proj__r1", False)):
        write_trajectory(tmp_path / "window", tmp_path / "window" / "eval", traj_id, trajectory, resolved=resolved)
    script = Path(__file__).resolve().parents[1] / "scripts" / "compare_schemes.py"
    assert runpy.run_path(str(script))["main"]([str(tmp_path / "window")]) == 0
    table = capsys.readouterr().out
    header, _, row = table.splitlines()
    cells = dict(zip([c.strip() for c in header.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")]))
    assert cells["scheme"] == "window" and cells["switch_type"] == "expert_window"
    assert (cells["rollouts"], cells["resolved"], cells["hand-overs/rollout"]) == ("2", "1", "2.0")
    assert cells["expert calls/resolved"] == "4.0" and cells["student calls/resolved"] == "4.0"  # both rollouts' calls, one resolved
    assert cells["expert step share"] == "0.50"
