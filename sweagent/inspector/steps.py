"""One trajectory as the steps both front ends show: who acted, what they thought, ran and saw, where control
changed hands, and the SFT weight of the turn. Every text here came from a model or a command, so it is made
printable (control characters shown as escapes) before any front end sees it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sweagent.inspector.extras import SFTWeights
from sweagent.inspector.index import Rollout
from sweagent.trajectory import ModelRole, Trajectory, TrajectoryError, load_trajectory

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
FOLD_LINES = 30
"""Observations longer than this are folded (shown head and tail, the middle on demand)."""


def printable(text: str) -> str:
    """`text` with terminal escapes and other control characters shown as `\\x..`, so no output can drive a
    terminal or break a page; newlines and tabs stay."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


@dataclass(frozen=True)
class Handover:
    from_role: str
    to_role: str
    reason: str

    @property
    def label(self) -> str:
        return f"{self.from_role} → {self.to_role}" + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True)
class StepView:
    index: int
    role: str
    model_name: str
    thought: str
    action: str
    observation: str
    handover: Handover | None
    """Set when control changed hands right before this step."""
    weight: int | None
    """SFT weight of this step's assistant turn (1 trained, 0 masked); None when the rollout has no SFT row."""


def _recorded(trajectory: Trajectory) -> dict[int, Handover]:
    """The hand-overs `info.oec` records by step, e.g. one at step 0 when a stuck student never took a step."""
    oec = trajectory.info.oec
    handovers = oec.handovers if oec is not None else []
    return {h.step: Handover(h.from_role, h.to_role, printable(h.reason)) for h in handovers}


def step_views(trajectory: Trajectory, weights: list[int] | None = None) -> list[StepView]:
    """The steps in order; `weights` are the SFT row's assistant-turn weights (turn i is step i). A hand-over is
    shown where the file records one, and wherever the role changes (older files record none)."""
    recorded = _recorded(trajectory)
    views: list[StepView] = []
    previous: str | None = None
    for index, step in enumerate(trajectory.trajectory):
        role = step.model_role or "expert"
        handover = recorded.get(index) or (Handover(previous, role, "") if previous not in (None, role) else None)
        weight = weights[index] if weights is not None and index < len(weights) else None
        views.append(StepView(index, role, printable(step.model_name or ""), printable(step.thought.strip()),
                              printable(step.action.strip()), printable(step.observation.rstrip()), handover, weight))
        previous = role
    return views


def fold(text: str, max_lines: int = FOLD_LINES) -> tuple[str, str, int]:
    """(head, tail, hidden line count) of a long text: the first and last lines, with the middle hidden."""
    lines = text.splitlines()
    if len(lines) <= max_lines:
        return text, "", 0
    keep = max_lines // 2
    return "\n".join(lines[:keep]), "\n".join(lines[-keep:]), len(lines) - 2 * keep


@dataclass(frozen=True)
class LoadedRollout:
    steps: list[StepView]
    error: str | None = None
    """Why the trajectory cannot be shown (then there are no steps)."""
    problem_statement: str = ""


def load_steps(rollout: Rollout, sft: SFTWeights, default_role: ModelRole) -> LoadedRollout:
    """The step view of one rollout, or no steps and the one-line reason it cannot be read."""
    if rollout.error:
        return LoadedRollout([], rollout.error)
    try:
        trajectory = load_trajectory(rollout.path, default_role)
    except TrajectoryError as exc:
        return LoadedRollout([], str(exc))
    return LoadedRollout(step_views(trajectory, sft.weights_for(rollout.run_dir, rollout.traj_id)), None,
                         printable(trajectory.problem_statement or ""))
