"""`run-batch --branches N`: N expert continuations of one student prefix, on real demo instances in the sandbox,
with a scripted student and the oracle expert.

Branch 0 runs the student; every other branch replays its prefix in a fresh workspace (no student call) and must
reproduce it step for step, else it is skipped with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sweagent.agent.switching_model import RolePlan
from sweagent.instance import load_instances
from sweagent.predictions import load_preds_json
from sweagent.run.batch_record import EXIT_STATUS_FILE
from sweagent.run.config_loading import ConfigError, build_config
from sweagent.run.run_batch import RunBatchConfig, run_batch
from sweagent.trajectory import load_trajectory, traj_path

REPO = Path(__file__).resolve().parents[1]
INSTANCES = REPO / "config/demo/instances.json"
BASE = [REPO / "config/local_oracle_demo.yaml", REPO / "config/schemes/one_switch.yaml",
        REPO / "config/schemes/scripted_student.yaml"]
pytestmark = pytest.mark.slow


def first_id() -> str:
    return load_instances(INSTANCES)[0].instance_id


def config(tmp_path: Path, *overrides: tuple[str, object], student: list[str] | None = None) -> RunBatchConfig:
    """The oracle demo with a scripted student, one instance, the switch drawn in 1..3 (2 when `student` is given)."""
    pairs = [("instances.slice", ":1"), ("output_dir", str(tmp_path / "run")), ("branches", 3), *overrides]
    files = list(BASE)
    if student is not None:
        replay = tmp_path / "student.yaml"
        replay.write_text(yaml.safe_dump(student))
        members = [{"model": {"type": "replay", "name": "scripted-student", "replay_path": str(replay)}},
                   {"model": {"type": "oracle", "name": "oracle", "instances_path": str(INSTANCES)}}]
        overlay = tmp_path / "student_overlay.yaml"
        overlay.write_text(yaml.safe_dump({"agent": {"model": {"models": members, "switch": {"start": 2, "end": 2}}}}))
        files.append(overlay)
    return build_config(RunBatchConfig, files, [(key, str(value)) for key, value in pairs])


def dumped(step) -> str:
    return json.dumps(step.model_dump(mode="json"), sort_keys=True)


def test_three_branches_share_the_byte_identical_prefix_and_each_has_its_own_lineage(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the scripted student's replay path is relative to the repository
    batch = config(tmp_path)
    counts = run_batch(batch)
    assert counts == {"submitted": 3}
    prefix_id = f"{first_id()}__r0"
    branches = [load_trajectory(traj_path(tmp_path / "run", f"{prefix_id}__b{j}")) for j in range(3)]
    k = branches[0].info.oec.switched_at_step
    assert k in (1, 2, 3)
    assert k == RolePlan(batch.agent.model.switch, batch.seed, first_id()).switch_step_drawn  # where the unbranched run switches
    for j, branch in enumerate(branches):
        oec = branch.info.oec
        assert (oec.prefix_id, oec.branch, oec.prefix_steps, oec.switched_at_step) == (prefix_id, j, k, k)
        assert branch.step_roles() == ["student"] * k + ["expert"] * (len(branch.trajectory) - k)
        assert [dumped(s) for s in branch.trajectory[:k]] == [dumped(s) for s in branches[0].trajectory[:k]]
        assert branch.info.oec.handovers == branches[0].info.oec.handovers
    # the prefix's student calls are made once, in branch 0; the replayed branches name where their prefix came from
    assert branches[0].info.oec.student.stats["api_calls"] == k
    assert [b.info.oec.student.stats["api_calls"] for b in branches[1:]] == [0, 0]
    assert [getattr(b.info.oec, "prefix_source", None) for b in branches] == [None, f"{prefix_id}__b0", f"{prefix_id}__b0"]
    # the deterministic oracle continues each replayed prefix as it did the live one: the environments matched
    assert len({b.info.submission for b in branches}) == 1 and branches[0].info.submission
    preds = load_preds_json(tmp_path / "run/preds.json")
    assert sorted(preds) == [f"{prefix_id}__b{j}" for j in range(3)]
    statuses = yaml.safe_load((tmp_path / "run" / EXIT_STATUS_FILE).read_text())
    assert statuses == {"instances_by_exit_status": {"submitted": sorted(preds)}}


def test_a_prefix_that_does_not_replay_alike_is_skipped_with_its_reason_and_stays_skipped(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    student = ["A random number.\n```\necho $RANDOM$RANDOM\n```", "Now the files.\n```\nls\n```", "Done.\n```\nsubmit\n```"]
    counts = run_batch(config(tmp_path, ("retry_infra_failures", 0), student=student))
    assert counts == {"submitted": 1, "skipped_branch": 2}
    run_dir = tmp_path / "run"
    prefix_id = f"{first_id()}__r0"
    for j in (1, 2):
        folder = run_dir / f"{prefix_id}__b{j}"
        marker = yaml.safe_load((folder / f"{prefix_id}__b{j}.skipped.yaml").read_text())
        assert marker["prefix_id"] == prefix_id and marker["branch"] == j
        assert marker["reason"].startswith("BranchDiverged: prefix step 0: the observation differs"), marker["reason"]
        assert not traj_path(run_dir, f"{prefix_id}__b{j}").exists() and not (folder / f"{prefix_id}__b{j}.pred").exists()
        diverged = load_trajectory(folder / marker["diverged_trajectory"])
        assert diverged.info.oec.expert.stats["api_calls"] == 0  # stopped before the expert was asked anything
    statuses = yaml.safe_load((run_dir / EXIT_STATUS_FILE).read_text())
    assert statuses["instances_by_exit_status"] == {"submitted": [f"{prefix_id}__b0"]}
    assert sorted(statuses["skipped_branches"]) == [f"{prefix_id}__b1", f"{prefix_id}__b2"]
    assert list(load_preds_json(run_dir / "preds.json")) == [f"{prefix_id}__b0"]
    assert sum(run_batch(config(tmp_path, student=student)).values()) == 0  # recorded: a rerun does not replay again


def test_a_student_that_submits_before_the_switch_leaves_no_prefix_to_branch(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    counts = run_batch(config(tmp_path, student=["Done.\n```\nsubmit\n```"]))
    assert counts == {"submitted": 1, "skipped_branch": 2}
    marker = yaml.safe_load((tmp_path / "run" / f"{first_id()}__r0__b1" / f"{first_id()}__r0__b1.skipped.yaml").read_text())
    assert "before the expert acted" in marker["reason"] and marker["diverged_trajectory"] is None


def test_a_rerun_runs_only_the_branches_that_are_not_finished(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    assert run_batch(config(tmp_path, ("branches", 2))) == {"submitted": 2}
    run_dir = tmp_path / "run"
    b0 = traj_path(run_dir, f"{first_id()}__r0__b0")
    b1 = traj_path(run_dir, f"{first_id()}__r0__b1")
    kept = b0.stat().st_mtime_ns
    b1.with_suffix(".pred").unlink()  # as if killed between its last .traj and its .pred
    assert run_batch(config(tmp_path, ("branches", 2))) == {"submitted": 1}
    assert run_batch(config(tmp_path, ("branches", 3))) == {"submitted": 1}  # one more branch of the same prefix
    assert b0.stat().st_mtime_ns == kept  # branch 0 (the prefix) was never run again
    assert load_trajectory(traj_path(run_dir, f"{first_id()}__r0__b2")).info.oec.prefix_source == b0.parent.name
    statuses = yaml.safe_load((run_dir / EXIT_STATUS_FILE).read_text())
    assert len(statuses["instances_by_exit_status"]["submitted"]) == 3


def test_branches_need_a_switching_model(tmp_path):
    single = tmp_path / "single.yaml"
    single.write_text(yaml.safe_dump({"agent": {"model": {"type": "replay", "replay_path": str(tmp_path / "r.yaml")}}}))
    with pytest.raises(ConfigError, match="branches=2 needs agent.model.type 'switching'"):
        build_config(RunBatchConfig, [single], [("branches", "2")])


def test_a_sampling_expert_continues_one_prefix_in_different_ways(tmp_path, monkeypatch):
    from sweagent.local_models.server import ensure_server

    monkeypatch.chdir(REPO)
    server = ensure_server("student")  # the local 0.5B, sampling at temperature 1, as the expert of each branch
    expert = {"name": "openai/student", "api_base": server.api_base, "api_key": "local", "temperature": 1.0,
              "max_output_tokens": 64, "per_instance_call_limit": 3, "input_cost_per_token": 0, "output_cost_per_token": 0}
    overlay = tmp_path / "sampling_expert.yaml"
    overlay.write_text(yaml.safe_dump({"agent": {"max_requeries": 2, "model": {"models": [
        {"model": {"type": "replay", "name": "scripted-student", "replay_path": "config/schemes/scripted_student_outputs.yaml"}},
        {"model": expert}]}}}))
    batch = build_config(RunBatchConfig, [*BASE, overlay], [("instances.slice", ":1"), ("output_dir", str(tmp_path / "run")),
                                                            ("branches", "3")])
    run_batch(batch)
    prefix_id = f"{first_id()}__r0"
    branches = [load_trajectory(traj_path(tmp_path / "run", f"{prefix_id}__b{j}")) for j in range(3)]
    k = branches[0].info.oec.switched_at_step
    assert all(b.info.oec.expert.stats["api_calls"] >= 1 and b.info.oec.prefix_steps == k for b in branches)
    assert len({dumped(s) for b in branches for s in b.trajectory[:k]}) == k  # one shared prefix
    # what each continuation did, and how much the expert wrote (its malformed answers are not steps, but count)
    continuations = {json.dumps([[s.response for s in b.trajectory[k:]], b.info.oec.expert.stats["tokens_received"]])
                     for b in branches}
    assert len(continuations) > 1, continuations


def test_branch_trajectories_are_graded_turned_into_sft_rows_and_grouped_by_instance(tmp_path, monkeypatch):
    import subprocess
    import sys

    from covariate_shift_analysis.groups import list_group

    monkeypatch.chdir(REPO)
    run_dir = tmp_path / "run"
    assert run_batch(config(tmp_path, ("branches", 2), ("instances.slice", ":2"))) == {"submitted": 4}
    python = [sys.executable, "-m"]
    graded = subprocess.run([*python, "oec.evaluation", str(run_dir), "--instances", str(INSTANCES), "--num_workers", "1"],
                            capture_output=True, text=True, timeout=900)
    assert graded.returncode == 0, graded.stderr[-2000:]
    rows_file = tmp_path / "sft.jsonl"
    converted = subprocess.run([*python, "oec.sft.cli", "--runs", str(run_dir), "--evals", str(run_dir / "eval"),
                                "--instances", str(INSTANCES), "--output", str(rows_file), "--val_fraction", "0", "--quiet"],
                               capture_output=True, text=True, timeout=900)
    assert converted.returncode == 0, converted.stderr[-2000:]
    ids = [load_instances(INSTANCES)[i].instance_id for i in (0, 1)]
    branch_ids = {f"{iid}__r0__b{j}": iid for iid in ids for j in (0, 1)}
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    assert rows and {row["traj_id"] for row in rows} <= set(branch_ids)
    for row in rows:
        trajectory = load_trajectory(traj_path(run_dir, row["traj_id"]))
        roles = trajectory.step_roles()
        assert row["instance_id"] == branch_ids[row["traj_id"]] and row["resolved"]
        assert row["model_switch_idx"] == trajectory.info.oec.prefix_steps == roles.index("expert")
        weights = [m["weight"] for m in row["messages"] if m["role"] == "assistant"]
        assert weights[: len(roles)] == [int(role == "expert") for role in roles]
    grouped = list_group("branches", [run_dir])
    assert {iid: sorted(r.traj_id for r in rollouts) for iid, rollouts in grouped.items()} == \
        {iid: sorted(t for t, i in branch_ids.items() if i == iid) for iid in ids}


def test_kill_9_during_a_replayed_branch_then_rerun_keeps_the_finished_branches(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    student = ["Wait a little.\n```\nsleep 2\n```", "Now the files.\n```\nls\n```", "Done.\n```\nsubmit\n```"]
    batch = config(tmp_path, student=student)
    config_file = tmp_path / "batch.yaml"
    config_file.write_text(yaml.safe_dump(batch.model_dump(mode="json")))
    process = subprocess.Popen([sys.executable, "-m", "sweagent", "run-batch", "--config", str(config_file)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    run_dir = tmp_path / "run"
    b0, b1 = (traj_path(run_dir, f"{first_id()}__r0__b{j}") for j in (0, 1))
    deadline = time.time() + 240
    while time.time() < deadline and not b0.with_suffix(".pred").exists():
        time.sleep(0.2)
    while time.time() < deadline and not b1.exists():  # branch 1 is replaying the prefix (its sleep)
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert b0.with_suffix(".pred").exists() and not b1.with_suffix(".pred").exists(), "the kill came too late"
    kept = b0.stat().st_mtime_ns
    counts = run_batch(build_config(RunBatchConfig, [config_file], []))
    assert counts == {"submitted": 2}  # branches 1 and 2; branch 0's prefix stands
    assert b0.stat().st_mtime_ns == kept
    assert load_trajectory(b1).info.oec.prefix_source == b0.parent.name
