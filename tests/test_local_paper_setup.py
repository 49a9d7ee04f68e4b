"""config/local_paper_setup.yaml on the real local servers: the paper's provider paths, formats and conversion.

One short rollout: the 0.5B student through litellm's hosted_vllm/ provider (XML function calls), the switch at step
2, then the 1.5B expert through litellm's anthropic/ provider against llama.cpp's /v1/messages (native tool_use). A
recording proxy in front of each server keeps what litellm really sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recording_proxy import RecordingProxy
from sweagent.local_models.server import ensure_server, stop_server
from sweagent.trajectory import load_trajectory, traj_path

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_paper_setup_rollout_sends_xml_to_the_student_and_native_tool_use_to_the_expert(tmp_path):
    # Servers of its own: one that another user's script started may stop with that script mid-test.
    servers = tmp_path / "servers"
    try:
        student, expert = ensure_server("student", state_dir=servers), ensure_server("expert", state_dir=servers)
        _check_paper_setup_rollout(tmp_path, student.url, expert.url)
    finally:
        for name in ("student", "expert"):
            stop_server(name, state_dir=servers)


def _check_paper_setup_rollout(tmp_path: Path, student_url: str, expert_url: str) -> None:
    instance_id = json.loads((REPO / "config/demo/instances.json").read_text())[0]["instance_id"]
    with RecordingProxy(student_url) as student_proxy, RecordingProxy(expert_url) as expert_proxy:
        env = {**os.environ, "OEC_STUDENT_API_BASE": f"{student_proxy.url}/v1", "OEC_EXPERT_ANTHROPIC_BASE": expert_proxy.url}
        command = [
            sys.executable, "-m", "sweagent", "run", "--config", "config/local_paper_setup.yaml",
            "--instance_file", "config/demo/instances.json", "--instance_id", instance_id, "--output_dir", str(tmp_path),
            "--agent.model.switch.start", "2", "--agent.model.switch.end", "2", "--agent.model.switch.stuck", "null",
            "--agent.model.models.1.model.per_instance_call_limit", "2",
        ]
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stderr[-2000:]
    trajectory = load_trajectory(traj_path(tmp_path, instance_id))
    assert trajectory.info.oec.switched_at_step == 2
    assert trajectory.step_roles()[:3] == ["student", "student", "expert"]

    # The student: plain chat completions on the vLLM path, no native tools, the paper's stop and our XML grammar.
    first = student_proxy.requests[0]
    assert first["path"] == "/v1/chat/completions" and "tools" not in first["body"]
    assert first["body"]["stop"] == ["</function>"] and "<function=" in first["body"]["grammar"]
    assert "<function=bash>" in first["body"]["messages"][0]["content"]
    student_steps = trajectory.trajectory[:2]
    assert all("<function=" in step.response for step in student_steps)

    # The expert: Anthropic Messages with tools, tool_choice any, cache_control, and the student's XML calls
    # converted into tool_use / tool_result blocks of its history.
    handover = expert_proxy.requests[0]
    assert handover["path"] == "/v1/messages" and handover["headers"].get("anthropic-version")
    body = handover["body"]
    assert {tool["name"] for tool in body["tools"]} == {"bash", "str_replace_editor", "submit"}
    assert all("input_schema" in tool for tool in body["tools"]) and body["tool_choice"] == {"type": "any"}
    assert "cache_control" in json.dumps(body["messages"])
    tool_uses = [block for message in body["messages"] if message["role"] == "assistant" and isinstance(message["content"], list)
                 for block in message["content"] if block["type"] == "tool_use"]
    assert [block["name"] for block in tool_uses] == [_called(step.action) for step in student_steps]
    results = [block for message in body["messages"] if message["role"] == "user" and isinstance(message["content"], list)
               for block in message["content"] if block["type"] == "tool_result"]
    assert [block["tool_use_id"] for block in results] == [block["id"] for block in tool_uses]

    # The server answered with real tool calls, which the trajectory keeps natively.
    expert_steps = [step for step in trajectory.trajectory if step.model_role == "expert"]
    assert expert_steps and all(step.extra_info["tool_calls"][0]["function"]["name"] for step in expert_steps)
    expert_messages = [m for m in trajectory.history if m.role == "assistant" and getattr(m, "model_role", None) == "expert"]
    assert expert_messages and all(m.tool_calls for m in expert_messages)


def _called(action: str) -> str:
    """The tool a student action line calls (`str_replace_editor view ...` → str_replace_editor; else bash)."""
    first = action.split(maxsplit=1)[0] if action.strip() else ""
    return first if first in {"str_replace_editor", "submit"} else "bash"
