"""The agent's loop logic on a fake environment (tests/conftest.py::FakeEnv): how a rollout ends, whatever the
environment answers. The real sandbox and container have their own tests; these need neither."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from swerex.exceptions import CommandTimeoutError, SwerexException

from sweagent.agent.agents import AgentConfig
from sweagent.run.run_single import build_agent
from sweagent.trajectory import Trajectory

BUNDLES = [{"path": "tools/registry"}, {"path": "tools/edit_anthropic"}, {"path": "tools/submit"}]


def xml(command: str) -> str:
    return f"Next I run a command.\n<function=bash><parameter=command>{command}</parameter></function>"


def run(tmp_path: Path, env, outputs: list[str], templates: dict | None = None, **tools) -> Trajectory:
    (tmp_path / "replay.yaml").write_text(yaml.safe_dump(outputs))
    config = AgentConfig.model_validate({
        "templates": templates or {},
        "tools": {"bundles": BUNDLES, "parse_function": {"type": "xml_function_calling"}, **tools},
        "model": {"type": "replay", "replay_path": str(tmp_path / "replay.yaml")},
    })
    agent = build_agent(config, instance_id="calc", replay_config=None, seed=0, traj_id="calc")
    return agent.run(env, tmp_path / "out", "calc")


def test_a_submitted_rollout_records_every_command_and_the_submission(tmp_path, fake_env):
    env = fake_env(lambda command: "4" if command == "python -c 'print(2 + 2)'" else "")
    trajectory = run(tmp_path, env, [xml("python -c 'print(2 + 2)'"), "Done.\n<function=submit></function>"])
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
    trajectory = run(tmp_path, env, [xml("ls"), xml("true"), "Done.\n<function=submit></function>"], templates)
    observations = [message.text for message in trajectory.history if message.role == "user"][1:]
    assert observations[:2] == ["/testbed$ ls\ncalc.py", "(nothing in /testbed)"]
    assert trajectory.trajectory[0].state["working_dir"] == "/testbed"  # recorded, so SFT rows render the same text


def test_one_knob_cuts_what_the_model_sees_and_the_step_keeps_the_whole_output(tmp_path, fake_env):
    long = "x" * 250
    env = fake_env(lambda command: long if command == "cat big" else "")
    # max_observation_chars, the retired second knob, is still accepted (recorded run configs carry it) and does nothing
    trajectory = run(tmp_path, env, [xml("cat big"), "Done.\n<function=submit></function>"],
                     {"max_observation_length": 100}, max_observation_chars=10)
    shown = [message.text for message in trajectory.history if message.role == "user"][1]
    assert shown.startswith("Observation: " + "x" * 100 + "<response clipped>") and "150 characters were left out" in shown
    assert trajectory.trajectory[0].observation == long
