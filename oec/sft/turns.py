"""A trajectory as turns: who acted, what they thought, the call in canonical form, and what came back.

Native tool calls (the agent records them in a step's `extra_info.tool_calls`) are read with the function-calling
parser and text actions with `action_to_call`, so an expert's native calls and a student's XML calls become the
same kind of object and can be rendered in the student's format. A run that ended in an "Exit due to ..." step
(SWE-agent's auto-submission after exit_cost, exit_context, ...) or that never called submit although a patch was
submitted gets a proper final submit turn instead: that patch was graded, so submitting there is what to learn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sweagent.tools.commands import Command
from sweagent.tools.parsing import FormatError, FunctionCallingParser, ToolCall, action_to_call, validate_call
from sweagent.trajectory import ModelRole, Trajectory, TrajectoryStep
from sweagent.utils.errors import OECError

SUBMIT = "submit"
_EXIT_TURN = re.compile(r"\s*Exit(?:ing)? due to ")
_NATIVE = FunctionCallingParser()


class TurnError(OECError):
    """A step whose action the student's tools cannot express."""


@dataclass
class Turn:
    role: ModelRole
    model_name: str
    thought: str
    call: ToolCall
    observation: str | None
    """None for the last turn: its output is never shown to the model."""
    state: dict[str, Any] = field(default_factory=dict)
    """What the observation template saw besides the output (working_dir, the bundles' state), as recorded."""


def _is_exit_turn(step: TrajectoryStep) -> bool:
    return not step.action.strip() and bool(_EXIT_TURN.match(step.thought or step.response))


def _call_of(step: TrajectoryStep, commands: list[Command]) -> ToolCall:
    native = step.extra_info.get("tool_calls")
    if native:
        call = _NATIVE.parse(step.response, native, commands).call
        return ToolCall(call.name, call.arguments)
    return action_to_call(step.action, commands)


def trajectory_turns(trajectory: Trajectory, commands: list[Command]) -> list[Turn]:
    """The turns to train on, ending in a submit when a patch was submitted. Raises TurnError."""
    turns: list[Turn] = []
    last_role: ModelRole = "expert"
    for index, step in enumerate(trajectory.trajectory):
        last_role = step.model_role or last_role
        if _is_exit_turn(step):
            break
        try:
            call = _call_of(step, commands)
        except FormatError as exc:
            raise TurnError(f"step {index}: {exc}") from None
        turns.append(Turn(last_role, step.model_name or "", step.thought.strip(), call, step.observation, dict(step.state)))
    if trajectory.info.submission and (not turns or turns[-1].call.name != SUBMIT):
        try:
            submit = validate_call(SUBMIT, {}, commands)
        except FormatError as exc:
            raise TurnError(f"final submit turn: {exc}") from None
        turns.append(Turn(last_role, turns[-1].model_name if turns else "", "", submit, None))
    if turns:
        turns[-1].observation = None
    return turns
