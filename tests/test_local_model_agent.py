"""`sweagent run` against the real local model servers (llama.cpp) on a real demo instance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweagent.local_models.server import ensure_server
from sweagent.trajectory import load_trajectory, traj_path

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_local_student_then_expert_produce_a_complete_trajectory(tmp_path):
    student, expert = ensure_server("student"), ensure_server("expert")
    instance = json.loads((REPO / "config/demo/instances.json").read_text())[0]
    env = {**os.environ, "OEC_STUDENT_API_BASE": student.api_base, "OEC_EXPERT_API_BASE": expert.api_base}
    command = [
        sys.executable, "-m", "sweagent", "run", "--config", "config/local_demo.yaml",
        "--instance_file", "config/demo/instances.json", "--instance_id", instance["instance_id"],
        "--output_dir", str(tmp_path),
        "--agent.model.switch.start", "1", "--agent.model.switch.end", "1",
        "--agent.model.models.0.model.per_instance_call_limit", "2",
        "--agent.model.models.0.model.max_output_tokens", "96",
        "--agent.model.models.1.model.per_instance_call_limit", "2",
        "--agent.model.models.1.model.max_output_tokens", "96",
    ]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stderr[-2000:]
    trajectory = load_trajectory(traj_path(tmp_path, instance["instance_id"]))
    assert trajectory.info.exit_status in {"submitted", "exit_cost", "exit_format", "exit_command_timeout"}
    oec = trajectory.info.oec
    assert oec.student.name == "openai/student" and oec.expert.name == "openai/expert"
    assert oec.student.stats["api_calls"] >= 1 and oec.student.stats["tokens_sent"] > 500
    switch = oec.switched_at_step
    expected = ["student" if switch is None or index < switch else "expert" for index in range(len(trajectory.trajectory))]
    assert trajectory.step_roles() == expected
    assert (tmp_path / instance["instance_id"] / f"{instance['instance_id']}.pred").is_file()
