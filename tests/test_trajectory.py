"""The .traj contract: OEC fields round-trip, plain SWE-agent trajectories load with a stated role."""

import json

import pytest

from sweagent.trajectory import (
    HistoryMessage, ModelInfo, OECInfo, Trajectory, TrajectoryError, TrajectoryInfo, TrajectoryStep,
    iter_trajectory_files, load_trajectory, split_traj_id, traj_id_for, traj_path,
)


def _oec_trajectory() -> Trajectory:
    steps = [TrajectoryStep(action=f"ls {i}", observation="x", model_role=role, model_name=name)
             for i, (role, name) in enumerate([("student", "s"), ("student", "s"), ("expert", "e")])]
    history = [HistoryMessage(role="system", content="sys"), HistoryMessage(role="user", content="task")]
    for step in steps:
        history += [HistoryMessage(role="assistant", content=step.action, model_role=step.model_role),
                    HistoryMessage(role="user", content="obs", message_type="observation")]
    info = TrajectoryInfo(exit_status="submitted", submission="diff", oec=OECInfo(
        switch_type="step_count", switch_step_drawn=2, switched_at_step=2, seed=0,
        student=ModelInfo(name="s"), expert=ModelInfo(name="e")))
    return Trajectory(trajectory=steps, history=history, info=info)


def test_oec_fields_round_trip(tmp_path):
    path = traj_path(tmp_path, "inst__r1")
    _oec_trajectory().save(path)
    loaded = load_trajectory(path)
    assert loaded.step_roles() == ["student", "student", "expert"]
    assert loaded.switched_at_step == 2
    assert [m.model_role for m in loaded.assistant_messages()] == ["student", "student", "expert"]
    assert list(iter_trajectory_files(tmp_path)) == [path]


def test_plain_swe_agent_trajectory_takes_the_stated_role(tmp_path):
    path = tmp_path / "plain.traj"
    path.write_text(json.dumps({
        "trajectory": [{"action": "ls", "observation": "a", "response": "ls", "thought": "", "state": {}, "query": [], "extra_info": {}}],
        "history": [{"role": "assistant", "content": "ls", "agent": "main", "message_type": "action", "unknown_key": 1}],
        "info": {"exit_status": "submitted", "submission": "", "some_future_field": [1]},
        "replay_config": "{}", "environment": "main",
    }))
    expert = load_trajectory(path)
    assert expert.step_roles() == ["expert"]
    assert load_trajectory(path, default_role="student").step_roles() == ["student"]
    dumped = expert.to_json_dict()
    assert dumped["history"][0]["unknown_key"] == 1 and dumped["info"]["some_future_field"] == [1]


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "bad.traj"
    path.write_text('{"trajectory": [')
    with pytest.raises(TrajectoryError, match="bad.traj"):
        load_trajectory(path)


def test_rollout_ids_round_trip():
    assert split_traj_id(traj_id_for("addict.x__op__1", 3)) == ("addict.x__op__1", 3)
    assert split_traj_id("plain_id") == ("plain_id", None)
