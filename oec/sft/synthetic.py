"""Synthetic trajectories in the DESIGN.md layout: for tests, the benchmark, and trying the conversion without
real runs. Students act in XML text and experts with native tool calls, as in the paper's setup; steps without
a role make a plain SWE-agent trajectory, and a step without a call is an "Exit due to ..." auto-submission."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sweagent.tools.commands import Command
from sweagent.tools.parsing import FunctionCallingParser, ToolCall, XMLFunctionCallingParser, call_to_action
from sweagent.trajectory import (HistoryMessage, ModelInfo, ModelRole, OECInfo, Trajectory, TrajectoryInfo,
                                 TrajectoryStep, traj_path)
from sweagent.utils.files import write_json_atomic

from oec.sft.prompt import DEFAULT_PROMPT_CONFIG
from oec.sft.reports import REPORT_FILE

STUDENT_NAME = "openai/student"
EXPERT_NAME = "claude-3-7-sonnet-20250219"
PATCH = "diff --git a/src/pkg/parse.py b/src/pkg/parse.py\n--- a/src/pkg/parse.py\n+++ b/src/pkg/parse.py\n+    return int(tag_id)\n"
_XML, _NATIVE = XMLFunctionCallingParser(), FunctionCallingParser()


@dataclass
class StepSpec:
    role: ModelRole | None
    """None: a plain SWE-agent step (no role recorded); its action is text."""
    call: ToolCall | None
    """None: an "Exit due to ..." auto-submission step."""
    observation: str = ""
    thought: str = ""
    model_name: str | None = None
    """Default: the student's or expert's name by role."""


@lru_cache(maxsize=1)
def recorded_agent() -> dict[str, Any]:
    """The `agent` section a run of the paper setup records: whose student prompt synthetic rows are rendered in."""
    from sweagent.run.config_loading import load_yaml_file

    return load_yaml_file(DEFAULT_PROMPT_CONFIG)["agent"]


def problem_statement_for(instance_id: str) -> str:
    return f"parse() returns the wrong id for tags in {instance_id}; it should return the integer id."


def _step(spec: StepSpec, index: int, commands: list[Command]) -> tuple[TrajectoryStep, list[HistoryMessage]]:
    name = spec.model_name or (EXPERT_NAME if spec.role == "expert" else STUDENT_NAME)
    if spec.call is None:
        text = spec.thought or "Exit due to cost limit"
        step = TrajectoryStep(thought=text, response=text, observation="Exited (autosubmitted)", model_role=spec.role, model_name=name)
        return step, [HistoryMessage(role="assistant", content=text, message_type="action", model_role=spec.role)]
    action = call_to_action(spec.call, commands)
    native = spec.role == "expert"
    if native:
        rendered = _NATIVE.render(spec.thought, ToolCall(spec.call.name, spec.call.arguments, f"toolu_{index:04d}"), commands)
    else:
        rendered = _XML.render(spec.thought, spec.call, commands)
    step = TrajectoryStep(action=action, observation=spec.observation, response=rendered.content, thought=spec.thought,
                          execution_time=0.1, extra_info={"tool_calls": rendered.tool_calls} if native else {},
                          model_role=spec.role, model_name=name)
    answer = HistoryMessage(role="assistant", content=rendered.content, message_type="action", model_role=spec.role,
                            thought=spec.thought, action=action, tool_calls=rendered.tool_calls)
    observation = HistoryMessage(role="tool" if native else "user", content=f"OBSERVATION:\n{spec.observation}",
                                 message_type="observation", tool_call_ids=[rendered.tool_calls[0]["id"]] if native else None)
    return step, [answer, observation]


def build_trajectory(instance_id: str, specs: list[StepSpec], commands: list[Command], *,
                     submission: str | None = PATCH, with_replay_config: bool = True) -> Trajectory:
    """A trajectory of the given steps; `info.oec` is recorded when any step has a role (an OEC rollout)."""
    problem = problem_statement_for(instance_id)
    history = [HistoryMessage(role="system", content="system prompt", message_type="system_prompt"),
               HistoryMessage(role="user", content=f"<issue>\n{problem}\n</issue>", message_type="observation")]
    steps = []
    for index, spec in enumerate(specs):
        step, messages = _step(spec, index, commands)
        steps.append(step)
        history += messages
    roles = [spec.role for spec in specs]
    oec = None
    if any(roles):
        switched = roles.index("expert") if "expert" in roles else None
        oec = OECInfo(switch_type="step_count", switch_step_drawn=switched, switched_at_step=switched,
                      student=ModelInfo(name=STUDENT_NAME), expert=ModelInfo(name=EXPERT_NAME), seed=0)
    info = TrajectoryInfo(submission=submission, exit_status="submitted" if submission else "exit_cost", oec=oec)
    recorded = {"agent": recorded_agent(), "problem_statement": {"text": problem, "id": instance_id, "type": "text"}}
    replay = json.dumps(recorded) if with_replay_config else None
    return Trajectory(trajectory=steps, history=history, info=info, replay_config=replay, environment=instance_id)


def _random_call(rng: random.Random, index: int) -> ToolCall:
    module = f"/testbed/src/pkg/module_{rng.randint(0, 40)}.py"
    kind = rng.choice(["grep", "view", "create", "replace", "test"])
    if kind == "grep":
        return ToolCall("bash", {"command": f"grep -rn 'def helper_{index}' /testbed/src | head -n {rng.randint(5, 30)}"})
    if kind == "view":
        start = rng.randint(1, 200)
        return ToolCall("str_replace_editor", {"command": "view", "path": module, "view_range": [start, start + 40]})
    if kind == "create":
        body = "\n".join(f"    assert parse('<tag id=\"{i}\">') == {{'id': {i}}}" for i in range(rng.randint(3, 12)))
        return ToolCall("str_replace_editor", {"command": "create", "path": f"/testbed/reproduce_{index}.py",
                                               "file_text": f"from pkg import parse\n\ndef test():\n{body}\n\ntest()\n"})
    if kind == "replace":
        return ToolCall("str_replace_editor", {"command": "str_replace", "path": module,
                                               "old_str": f"    return value_{index}\n", "new_str": f"    return value_{index} or None\n"})
    return ToolCall("bash", {"command": f"cd /testbed && python -m pytest -x -q tests/test_module_{index}.py 2>&1 | tail -n 20"})


def random_oec_trajectory(instance_id: str, n_steps: int, switch_at: int, rng: random.Random, commands: list[Command]) -> Trajectory:
    """A healthy rollout of `n_steps` distinct steps: the student until `switch_at`, then the expert, who submits."""
    specs = []
    for index in range(n_steps):
        call = ToolCall("submit", {}) if index == n_steps - 1 else _random_call(rng, index)
        observation = "" if call.name == "submit" else f"output of step {index}:\n" + "\n".join(
            f"line {line}: value_{rng.randint(0, 10**6)}" for line in range(rng.randint(2, 25)))
        thought = f"Step {index}: {'checking' if index % 2 else 'looking at'} the {call.name} output for {instance_id}."
        specs.append(StepSpec("expert" if index >= switch_at else "student", call, observation, thought))
    return build_trajectory(instance_id, specs, commands)


def write_trajectory(run_dir: Path, eval_dir: Path | None, traj_id: str, trajectory: Trajectory, resolved: bool) -> None:
    """Save a trajectory where a run would, and its eval report (SWE-smith format) where the harness would."""
    trajectory.save(traj_path(run_dir, traj_id))
    if eval_dir is not None:
        tests = {"FAIL_TO_PASS": {"success": ["tests/test_parse.py::test_id"] if resolved else [],
                                  "failure": [] if resolved else ["tests/test_parse.py::test_id"]},
                 "PASS_TO_PASS": {"success": ["tests/test_parse.py::test_other"], "failure": []}}
        write_json_atomic(eval_dir / traj_id / REPORT_FILE, {"patch_exists": True, "resolved": resolved, "tests_status": tests})
