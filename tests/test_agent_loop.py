"""The agent's loop logic on a fake environment (tests/conftest.py::FakeEnv): how a rollout ends, whatever the
environment answers, and how each parse format turns answers into commands. The real sandbox and container have their
own tests (the real rollout end to end is in tests/test_agent.py); these need neither."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from swerex.exceptions import CommandTimeoutError, SwerexException

from sweagent.agent.agents import AgentConfig
from sweagent.run.run_single import build_agent
from sweagent.trajectory import Trajectory, load_trajectory
from conftest import BUNDLES, SUBMIT_XML, xml


def run(tmp_path: Path, env, outputs: list, templates: dict | None = None, agent: dict | None = None, **tools) -> Trajectory:
    """One rollout of the replayed `outputs` on `env`; its .traj is saved under tmp_path/out/calc/."""
    (tmp_path / "replay.yaml").write_text(yaml.safe_dump(outputs))
    config = AgentConfig.model_validate({
        "templates": templates or {},
        "tools": {"bundles": BUNDLES, "parse_function": {"type": "xml_function_calling"}, **tools},
        "model": {"type": "replay", "replay_path": str(tmp_path / "replay.yaml")},
        **(agent or {}),
    })
    agent = build_agent(config, instance_id="calc", replay_config=None, seed=0, traj_id="calc")
    return agent.run(env, tmp_path / "out", "calc")


def test_a_submitted_rollout_records_every_command_and_the_submission(tmp_path, fake_env):
    env = fake_env(lambda command: "4" if command == "python -c 'print(2 + 2)'" else "")
    trajectory = run(tmp_path, env, [xml("python -c 'print(2 + 2)'"), SUBMIT_XML])
    assert trajectory.info.exit_status == "submitted" and trajectory.info.submission == env.patch
    assert [step.observation for step in trajectory.trajectory] == ["4", ""]
    assert env.commands[-2:] == ["python -c 'print(2 + 2)'", "submit"]


def test_an_environment_that_fails_a_command_ends_the_rollout_as_an_environment_error(tmp_path, fake_env):
    def answer(command: str) -> str:
        if command == "ls":
            raise SwerexException("the runtime stopped answering")
        return ""

    trajectory = run(tmp_path, fake_env(answer), [xml("ls"), xml("never run")])
    assert trajectory.info.exit_status == "exit_environment_error"
    assert "SwerexException: the runtime stopped answering" in trajectory.info.exit_message
    assert trajectory.info.submission in (None, "")  # no auto-submission from an environment that failed


def test_commands_that_keep_timing_out_end_the_rollout_with_the_diff_so_far_submitted(tmp_path, fake_env):
    def answer(command: str) -> str:
        if command.startswith("sleep"):
            raise CommandTimeoutError("timed out")
        return ""

    env = fake_env(answer)
    trajectory = run(tmp_path, env, [xml("sleep 100"), xml("sleep 200"), xml("never run")], max_consecutive_execution_timeouts=2)
    assert trajectory.info.exit_status == "exit_command_timeout"
    assert len(trajectory.trajectory) == 1 and "was cancelled because it took more than" in trajectory.trajectory[0].observation
    assert trajectory.info.submission == env.patch
    assert "never run" not in env.commands


@pytest.mark.parametrize("garbage", ["no call here", "<function=bash>unclosed"])
def test_answers_that_never_parse_end_with_exit_format_without_running_anything(tmp_path, fake_env, garbage):
    env = fake_env()
    trajectory = run(tmp_path, env, [garbage] * 4)
    assert trajectory.info.exit_status == "exit_format" and trajectory.trajectory == []
    assert not any(garbage in command for command in env.commands)


def test_observation_templates_see_the_working_dir(tmp_path, fake_env):
    env = fake_env(lambda command: "calc.py" if command == "ls" else "")
    templates = {"next_step_template": "{{working_dir}}$ ls\n{{observation}}", "next_step_no_output_template": "(nothing in {{working_dir}})"}
    trajectory = run(tmp_path, env, [xml("ls"), xml("true"), SUBMIT_XML], templates)
    observations = [message.text for message in trajectory.history if message.role == "user"][1:]
    assert observations[:2] == ["/testbed$ ls\ncalc.py", "(nothing in /testbed)"]
    assert trajectory.trajectory[0].state["working_dir"] == "/testbed"  # recorded, so SFT rows render the same text


def test_one_knob_cuts_what_the_model_sees_and_the_step_keeps_the_whole_output(tmp_path, fake_env):
    long = "x" * 250
    env = fake_env(lambda command: long if command == "cat big" else "")
    # max_observation_chars, the retired second knob, is still accepted (recorded run configs carry it) and does nothing
    trajectory = run(tmp_path, env, [xml("cat big"), SUBMIT_XML],
                     {"max_observation_length": 100}, max_observation_chars=10)
    shown = [message.text for message in trajectory.history if message.role == "user"][1]
    assert shown.startswith("Observation: " + "x" * 100 + "<response clipped>") and "150 characters were left out" in shown
    assert trajectory.trajectory[0].observation == long


def test_an_answer_without_an_action_is_requeried_and_the_next_one_runs(tmp_path, fake_env):
    env = fake_env(lambda command: "recovered" if command == "echo recovered" else "")
    trajectory = run(tmp_path, env, ["no action here", xml("echo recovered"), SUBMIT_XML])
    assert trajectory.info.exit_status == "submitted"
    assert [step.action for step in trajectory.trajectory] == ["echo recovered", "submit"]
    assert trajectory.trajectory[0].observation == "recovered"
    assert trajectory.info.model_stats["api_calls"] == 3
    assert not any("no action here" in command for command in env.commands)


def test_repeated_format_errors_end_with_exit_format_and_keep_the_trajectory(tmp_path, fake_env):
    env = fake_env()
    trajectory = run(tmp_path, env, [xml("echo changed >> calc.py"), "garbage", "more garbage", "still garbage"],
                     agent={"max_requeries": 2})
    assert trajectory.info.exit_status == "exit_format"
    assert "echo changed >> calc.py" in env.commands
    assert len(load_trajectory(tmp_path / "out" / "calc" / "calc.traj").trajectory) == 1
    assert trajectory.info.submission == env.patch  # the diff so far is auto-submitted


def test_interactive_commands_are_refused_before_they_reach_the_environment(tmp_path, fake_env):
    env = fake_env(lambda command: "fine" if command == "echo fine" else "")
    trajectory = run(tmp_path, env, [xml("vim calc.py"), xml("echo fine"), SUBMIT_XML])
    assert trajectory.info.exit_status == "submitted"
    assert trajectory.trajectory[0].action == "echo fine" and trajectory.trajectory[0].observation == "fine"
    assert not any("vim" in command for command in env.commands)


def test_the_thought_action_format_runs_the_fenced_command(tmp_path, fake_env):
    source = "def add(a, b):\n    return a - b"
    env = fake_env(lambda command: source if command == "cat calc.py" else "")
    outputs = ["Look first.\n```\ncat calc.py\n```", "Now submit.\n```\nsubmit\n```"]
    trajectory = run(tmp_path, env, outputs, parse_function={"type": "thought_action"})
    assert trajectory.info.exit_status == "submitted"
    assert [step.action for step in trajectory.trajectory] == ["cat calc.py", "submit"]
    assert trajectory.trajectory[0].thought.strip() == "Look first." and trajectory.trajectory[0].observation == source
    assert env.commands[-2:] == ["cat calc.py", "submit"]


def test_function_calling_records_each_observation_as_a_tool_message_for_its_call(tmp_path, fake_env):
    call = {"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": json.dumps({"command": "echo native"})}}
    done = {"id": "call_2", "type": "function", "function": {"name": "submit", "arguments": "{}"}}
    env = fake_env(lambda command: "native" if command == "echo native" else "")
    trajectory = run(tmp_path, env, [{"content": "checking", "tool_calls": [call]}, {"content": "", "tool_calls": [done]}],
                     parse_function={"type": "function_calling"})
    assert trajectory.info.exit_status == "submitted"
    tool_messages = [m for m in trajectory.history if m.role == "tool"]
    assert tool_messages[0].tool_call_ids == ["call_1"] and "native" in tool_messages[0].text
    assert "echo native" in env.commands


def test_a_model_that_runs_out_of_answers_ends_with_exit_error_and_a_partial_trajectory(tmp_path, fake_env):
    env = fake_env()
    trajectory = run(tmp_path, env, [xml("echo one")])
    assert trajectory.info.exit_status == "exit_error"
    assert len(load_trajectory(tmp_path / "out" / "calc" / "calc.traj").trajectory) == 1
    assert "echo one" in env.commands
