"""`sweagent run-batch` on real demo instances: rollouts, resume after kill -9, Ray, a dead model server.

Retries, the output-dir lock, bad input and scratch cleanup are in test_batch_attacks.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sweagent.instance import load_instances
from sweagent.predictions import load_preds_json
from sweagent.run.config_loading import build_config
from sweagent.run.run_batch import RunBatchConfig, run_batch
from sweagent.trajectory import load_trajectory, traj_path
from conftest import XML_TOOLS

REPO = Path(__file__).resolve().parents[1]
INSTANCES = REPO / "config/demo/instances.json"
pytestmark = pytest.mark.slow


def first_ids(n: int) -> list[str]:
    return [instance.instance_id for instance in load_instances(INSTANCES)[:n]]


def batch_config(tmp_path: Path, outputs: list, **overrides) -> Path:
    replay = tmp_path / "replay.yaml"
    replay.write_text(yaml.safe_dump(outputs))
    data = {
        "agent": {"templates": {"system_template": "{{command_docs}}"},
                  "tools": XML_TOOLS,
                  "model": {"type": "switching",
                            "models": [{"model": {"type": "replay", "replay_path": str(replay), "name": "student"}},
                                       {"model": {"type": "replay", "replay_path": str(replay), "name": "expert"}}],
                            "switch": {"type": "random_step_range", "start": 0, "end": 2}}},
        "instances": {"path": str(INSTANCES), "slice": ":2"},
        "output_dir": str(tmp_path / "run"),
        **overrides,
    }
    path = tmp_path / "batch.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cmd(command: str) -> str:
    return f"<function=bash><parameter=command>{command}</parameter></function>"


STEPS = [cmd("echo one"), cmd("echo two >> NOTES.txt"), cmd("echo three"), "<function=submit></function>"]


def test_rollouts_preds_and_exit_statuses(tmp_path):
    config = build_config(RunBatchConfig, [batch_config(tmp_path, STEPS, rollouts_per_instance=2, num_workers=2)], [])
    counts = run_batch(config)
    assert counts == {"submitted": 4}
    ids = first_ids(2)
    run_dir = tmp_path / "run"
    preds = load_preds_json(run_dir / "preds.json")
    assert sorted(preds) == sorted(f"{iid}__r{k}" for iid in ids for k in (0, 1))
    assert all(p.instance_id in ids and "+two" in p.model_patch for p in preds.values())
    statuses = yaml.safe_load((run_dir / "run_batch_exit_statuses.yaml").read_text())
    assert len(statuses["instances_by_exit_status"]["submitted"]) == 4
    switch_points = {traj_id: load_trajectory(traj_path(run_dir, traj_id)).info.oec.switched_at_step for traj_id in preds}
    assert all(k in (0, 1, 2) for k in switch_points.values())
    role_stats = (run_dir / "run_batch_role_stats.yaml").read_text()
    assert yaml.safe_load(role_stats)["expert"]["rollouts"] == sum(k < 3 for k in switch_points.values())
    # a rerun with the same seed draws the same switch points; everything finished is skipped, and the summary files
    # rebuilt from what the run dir holds (read once, at the start) say what the first run's results said
    written = (run_dir / "run_batch_exit_statuses.yaml").read_text()
    again = run_batch(build_config(RunBatchConfig, [tmp_path / "batch.yaml"], [("rollouts_per_instance", 2)]))
    assert sum(again.values()) == 0
    assert (run_dir / "run_batch_exit_statuses.yaml").read_text() == written
    assert (run_dir / "run_batch_role_stats.yaml").read_text() == role_stats


def test_kill_9_then_rerun_finishes_the_rest_without_redoing_finished_rollouts(tmp_path):
    slow = [cmd("sleep 1.5"), cmd("echo done >> NOTES.txt"), "<function=submit></function>"]
    config_path = batch_config(tmp_path, slow, instances={"path": str(INSTANCES), "slice": ":3"})
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "sweagent", "run-batch", "--config", str(config_path)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    run_dir = tmp_path / "run"
    ids = first_ids(3)
    deadline = time.time() + 240
    while time.time() < deadline:
        finished = [i for i in ids if traj_path(run_dir, i).with_suffix(".pred").exists()]  # the .pred is written last
        if finished:
            break
        time.sleep(0.3)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert finished, "no rollout finished before the kill"
    first_done = finished[0]
    mtime = traj_path(run_dir, first_done).stat().st_mtime_ns
    counts = run_batch(build_config(RunBatchConfig, [config_path], []))
    assert sum(counts.values()) == 3 - len(finished)
    assert traj_path(run_dir, first_done).stat().st_mtime_ns == mtime
    for iid in ids:
        assert load_trajectory(traj_path(run_dir, iid)).info.exit_status == "submitted"
    assert len(json.loads((run_dir / "preds.json").read_text())) == 3
    statuses = yaml.safe_load((run_dir / "run_batch_exit_statuses.yaml").read_text())
    assert statuses == {"instances_by_exit_status": {"submitted": sorted(ids)}}  # the killed run's results kept


def test_ray_executor_runs_several_instances(tmp_path):
    config = build_config(RunBatchConfig, [batch_config(tmp_path, STEPS, num_workers=2)],
                          [("executor.type", "ray")])
    try:
        counts = run_batch(config)
    finally:
        import ray

        ray.shutdown()
    assert counts == {"submitted": 2}
    assert len(load_preds_json(tmp_path / "run/preds.json")) == 2


def test_a_dead_model_server_leaves_each_instance_unfinished_and_the_batch_goes_on(tmp_path):
    dead = {"name": "openai/student", "api_base": "http://127.0.0.1:9/v1", "api_key": "x",
            "retry": {"retries": 1, "min_wait": 0.1, "max_wait": 0.2}, "timeout": 5}
    path = batch_config(tmp_path, STEPS)
    data = yaml.safe_load(path.read_text())
    data["agent"]["model"] = dead
    path.write_text(yaml.safe_dump(data))
    counts = run_batch(build_config(RunBatchConfig, [path], []))
    assert counts == {"infra_failed": 2}  # no .pred: a rerun tries them again
    trajectory = load_trajectory(traj_path(tmp_path / "run", first_ids(1)[0]))
    assert trajectory.info.exit_status == "exit_error" and "still failing" in trajectory.info.exit_message
