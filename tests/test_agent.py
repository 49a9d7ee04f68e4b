"""The agent loop in the real sandbox, driven by a replay model: what users rely on from `sweagent run` end to end
(the diff, the shell, timeouts, secrets, a killed run). Loop logic alone is tested on a fake environment in
tests/test_agent_loop.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from sweagent.run.config_loading import build_config
from sweagent.run.run_single import RunSingleConfig, dump_config
from sweagent.trajectory import load_trajectory
from conftest import SUBMIT_XML, XML_TOOLS, run_agent, xml


def test_submission_is_exactly_the_agents_diff_and_applies_to_the_pristine_tree(tmp_path, repo):
    edit = ("<function=str_replace_editor><parameter=command>str_replace</parameter><parameter=path>/testbed/calc.py"
            "</parameter><parameter=old_str>a - b</parameter><parameter=new_str>a + b</parameter></function>")
    trajectory, run_dir = run_agent(tmp_path, repo, [xml("cat calc.py"), edit, SUBMIT_XML])
    assert trajectory.info.exit_status == "submitted"
    patch = (run_dir / "calc.patch").read_text()
    assert "+    return a + b" in patch and trajectory.info.submission == patch
    pred = json.loads((run_dir / "calc.pred").read_text())
    assert pred["instance_id"] == "calc" and pred["model_patch"] == patch
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "apply", "--check", str(run_dir / "calc.patch")], cwd=repo, check=True)
    saved = load_trajectory(run_dir / "calc.traj")
    assert [s.model_role for s in saved.trajectory] == ["expert"] * 3
    assert all(m.model_role == "expert" for m in saved.assistant_messages())
    assert "2:     return a + b" in saved.info.edited_files30


def test_heredoc_and_persistent_shell_state(tmp_path, repo):
    heredoc = "cat <<'EOF' > /testbed/check.py\nfrom calc import add\nprint('sum', add(2, 3))\nEOF\ncd /testbed && python3 check.py"
    trajectory, _ = run_agent(tmp_path, repo, [xml("export MARK=kept && cd /tmp"), xml("echo $MARK; pwd"), xml(heredoc), SUBMIT_XML])
    observations = [step.observation for step in trajectory.trajectory]
    assert "kept" in observations[1] and "/tmp" in observations[1]
    assert "sum -1" in observations[2]
    assert "check.py" in trajectory.info.submission


def test_a_hanging_command_is_interrupted_and_the_session_survives(tmp_path, repo):
    outputs = [xml("export KEEP=yes"), xml("sleep 100"), xml("echo $KEEP"), SUBMIT_XML]
    trajectory, _ = run_agent(tmp_path, repo, outputs, tools={"execution_timeout": 2})
    steps = trajectory.trajectory
    assert "cancelled" in steps[1].observation and steps[1].execution_time < 20
    assert steps[2].observation.strip() == "yes"
    assert trajectory.info.exit_status == "submitted"


def test_api_key_never_lands_in_trajectory_log_or_sandbox(tmp_path, repo, monkeypatch):
    secret = "sk-test-0123456789abcdefghijklmnop"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    replay = tmp_path / "r.yaml"
    replay.write_text(yaml.safe_dump([xml("env | grep -c sk-test || true"), SUBMIT_XML]))
    trajectory, run_dir = run_agent(tmp_path, repo, [], model={"type": "replay", "replay_path": str(replay)},
                                    agent={"templates": {"system_template": "key {{working_dir}}"}})
    assert trajectory.trajectory[0].observation.strip() == "0"  # the host's key is not visible in the sandbox
    config = build_config(RunSingleConfig, [Path(__file__).parents[1] / "config/default.yaml"],
                          [("agent.model.api_key", secret)])
    assert secret not in dump_config(config)
    for path in run_dir.iterdir():
        assert secret not in path.read_text(errors="replace"), path


def test_kill_9_mid_run_loses_at_most_the_step_in_flight(tmp_path, repo):
    import os
    import signal
    import sys
    import time

    from sweagent.trajectory import journal_path, load_trajectory_outline

    outputs = [xml(f"echo step {i} >> NOTES.txt; cat NOTES.txt | wc -l") for i in range(5)] + [xml("sleep 60"), SUBMIT_XML]
    (tmp_path / "replay.yaml").write_text(yaml.safe_dump(outputs))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"agent": {
        "templates": {"system_template": "{{command_docs}}"},
        "tools": XML_TOOLS,
        "model": {"type": "replay", "replay_path": str(tmp_path / "replay.yaml")}}}))
    traj = tmp_path / "out" / "calc" / "calc.traj"
    process = subprocess.Popen(
        [sys.executable, "-m", "sweagent", "run", "--config", str(tmp_path / "config.yaml"), "--repo_path", str(repo),
         "--problem_statement", "add() subtracts", "--output_dir", str(tmp_path / "out")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if journal_path(traj).exists() and len(journal_path(traj).read_text().splitlines()) == 5:
            break
        time.sleep(0.1)
    time.sleep(0.5)  # the sixth step (sleep 60) is in flight
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    saved = load_trajectory(traj)
    assert [step.observation.strip() for step in saved.trajectory] == [str(i) for i in range(1, 6)]
    assert saved.info.exit_status is None and saved.info.model_stats["api_calls"] == 5
    assert [step.query[-1]["content"] for step in saved.trajectory[1:]] == [m.content for m in saved.history[3:10:2]]
    assert len(load_trajectory_outline(traj).trajectory) == 5
