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


# ---- saving a running rollout: compact queries and the journal -------------------------------------------------------
def _rollout(steps: int, *, elide_after: int = 3) -> tuple[list[TrajectoryStep], list[dict]]:
    """Steps and history as the agent makes them: each query is the model's view of the history so far, older
    observations elided by the real history processor (so queries are not plain prefixes of the history)."""
    from sweagent.agent.history_processors import LastNObservations
    from sweagent.trajectory import api_message

    history = [{"role": "system", "content": "system prompt " * 50, "agent": "main", "message_type": "system_prompt"},
               {"role": "user", "content": "the task", "agent": "main", "message_type": "observation"}]
    elide = LastNObservations(n=elide_after)
    out = []
    for index in range(steps):
        query = [api_message(m) for m in elide(history)]
        action = f"cat file_{index}.py"
        history.append({"role": "assistant", "content": f"thinking {index}\n{action}", "agent": "main",
                        "message_type": "action", "action": action, "model_role": "expert", "model_name": "e"})
        observation = f"line of output {index}\n" * 40
        history.append({"role": "user", "content": f"OBSERVATION:\n{observation}", "agent": "main", "message_type": "observation"})
        out.append(TrajectoryStep(action=action, observation=observation, response=history[-2]["content"],
                                  query=query, model_role="expert", model_name="e"))
    return out, history


def test_each_query_is_stored_once_and_loads_in_full(tmp_path):
    from sweagent.trajectory import load_trajectory_outline

    steps, history = _rollout(60)
    path = traj_path(tmp_path, "long")
    Trajectory(trajectory=steps, history=history, info=TrajectoryInfo(exit_status="submitted")).save(path)
    loaded = load_trajectory(path)
    assert [step.query for step in loaded.trajectory] == [step.query for step in steps]
    assert loaded.history[5].content == history[5]["content"]
    stored = [len(json.dumps(step["query"])) for step in json.loads(path.read_text())["trajectory"]]
    assert sum(stored) < len(json.dumps([step.query for step in steps])) / 20
    assert stored[-1] < stored[10] + 20  # the last step's query costs what the tenth's did: the file grows linearly
    assert load_trajectory_outline(path).step_roles() == ["expert"] * 60


def test_a_broken_compact_query_names_the_file_and_step(tmp_path):
    steps, history = _rollout(3)
    path = tmp_path / "bad.traj"
    data = Trajectory(trajectory=steps, history=history).to_json_dict()
    data["trajectory"][2]["query"]["messages"].append({"history_index": 99})
    path.write_text(json.dumps(data))
    with pytest.raises(TrajectoryError, match=r"bad.traj: .*trajectory.2.query: history_index 99"):
        load_trajectory(path)


def test_a_killed_rollout_keeps_every_step_it_finished(tmp_path):
    from sweagent.trajectory import TrajectoryWriter, journal_path, load_trajectory_outline

    steps, history = _rollout(12)
    path = traj_path(tmp_path, "killed")
    writer = TrajectoryWriter(path)
    live = history[:2]
    writer.checkpoint(Trajectory(history=live), live)
    for number, step in enumerate(steps[:10]):
        live.extend(history[2 + 2 * number: 4 + 2 * number])
        writer.record(steps[: number + 1], live, TrajectoryInfo(model_stats={"api_calls": number + 1}), None)
    # no final save: the process died here, in the middle of writing the next line
    with journal_path(path).open("a") as journal:
        journal.write('{"steps_before": 10, "history_before": 22, "steps": [{"action": "cat fi')
    loaded = load_trajectory(path)
    assert [s.action for s in loaded.trajectory] == [s.action for s in steps[:10]]
    assert [s.query for s in loaded.trajectory] == [s.query for s in steps[:10]]
    assert len(loaded.history) == 22 and loaded.info.model_stats == {"api_calls": 10}
    assert len(load_trajectory_outline(path).trajectory) == 10
    # the final save holds everything and removes the journal
    Trajectory(trajectory=steps[:10], history=live).save(path)
    assert not journal_path(path).exists() and len(load_trajectory(path).trajectory) == 10


def test_a_rewritten_history_is_saved_whole_and_old_journal_lines_are_skipped(tmp_path):
    from sweagent.trajectory import TrajectoryWriter, journal_path

    steps, history = _rollout(4)
    path = traj_path(tmp_path, "handover")
    writer = TrajectoryWriter(path)
    first = history[:4]
    writer.checkpoint(Trajectory(history=history[:2]), history[:2])
    writer.record(steps[:1], first, TrajectoryInfo(), lambda: Trajectory(trajectory=steps[:1], history=first))
    assert not journal_path(path).exists()  # `first` is a new list: a hand-over's rewritten history, saved whole
    rewritten = [{**history[0], "content": "the expert's system prompt"}, *history[1:6]]
    writer.record(steps[:2], rewritten, TrajectoryInfo(), lambda: Trajectory(trajectory=steps[:2], history=rewritten))
    rewritten.extend(history[6:8])
    writer.record(steps[:3], rewritten, TrajectoryInfo(), None)
    writer.close()
    assert len(load_trajectory(path).trajectory) == 3  # the whole save at step 2, then one journal line
    # a kill between a whole save and the journal's removal leaves lines the file already holds
    Trajectory(trajectory=steps[:3], history=rewritten).save(path)
    journal_path(path).write_text(json.dumps({"steps_before": 1, "history_before": 4, "steps": [{"action": "x"}], "history": []}) + "\n")
    loaded = load_trajectory(path)
    assert len(loaded.trajectory) == 3 and loaded.history[0].content == "the expert's system prompt"
    assert [s.query for s in loaded.trajectory] == [s.query for s in steps[:3]]


def test_journal_lines_mask_secrets_like_every_saved_file(tmp_path, monkeypatch):
    from sweagent.trajectory import TrajectoryWriter, journal_path
    from sweagent.utils.secrets import MASK

    secret = "sk-journal-test-0123456789abcdef"
    monkeypatch.setenv("OEC_TEST_JOURNAL_API_KEY", secret)
    steps, history = _rollout(1)
    steps[0].observation = f"printed {secret}"
    path = traj_path(tmp_path, "secret")
    writer = TrajectoryWriter(path)
    writer.checkpoint(Trajectory(history=history[:2]), history)
    writer.record(steps, history, TrajectoryInfo(), None)
    writer.close()
    text = journal_path(path).read_text()
    assert secret not in text and MASK in text
