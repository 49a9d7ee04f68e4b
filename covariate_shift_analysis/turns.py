"""What a turn is, and the text that stands for it.

A turn is one agent step of the trajectory (`trajectory[i]` in the `.traj` file): the action the model ran and
the observation the environment returned, i.e. the state the agent is in after acting. The thought is left out
so that the shift measures what the agent did and saw, not how verbosely a model reasons. The text embedded is

    ACTION: <action>
    OBSERVATION: <observation>

with both parts stripped of surrounding whitespace. Texts are identified by the SHA-256 of this full,
untruncated text; truncation to the model's window happens only when a new text is embedded (see `embedder`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sweagent.trajectory import ModelRole, Trajectory, TrajectoryStep

ACTION_LABEL = "ACTION: "
OBSERVATION_LABEL = "\nOBSERVATION: "


@dataclass(frozen=True)
class Turn:
    action: str
    observation: str
    role: ModelRole

    @classmethod
    def of(cls, step: TrajectoryStep) -> Turn:
        return cls(step.action.strip(), step.observation.strip(), step.model_role or "expert")

    @property
    def text(self) -> str:
        return format_turn(self.action, self.observation)

    @property
    def key(self) -> bytes:
        """Cache key: identical turn texts share one vector, whichever trajectory or group they come from."""
        return hashlib.sha256(self.text.encode("utf-8", "surrogatepass")).digest()


def format_turn(action: str, observation: str) -> str:
    return f"{ACTION_LABEL}{action}{OBSERVATION_LABEL}{observation}"


def trajectory_turns(trajectory: Trajectory) -> list[Turn]:
    """The turns of a loaded trajectory (roles already filled in by `load_trajectory`)."""
    return [Turn.of(step) for step in trajectory.trajectory]
