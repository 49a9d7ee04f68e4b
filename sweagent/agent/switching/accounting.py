"""Model usage per role (calls, tokens, dollars, steps), so generation schemes compare at equal expert budget."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import BaseModel

from sweagent.trajectory import ModelRole, Trajectory
from sweagent.utils.files import write_text_atomic

ROLE_STATS_FILE = "run_batch_role_stats.yaml"
ROLES: tuple[ModelRole, ...] = ("student", "expert")


class RoleUsage(BaseModel):
    """What one role spent over a set of rollouts."""

    rollouts: int = 0
    """Rollouts in which this role took at least one step."""
    steps: int = 0
    api_calls: int = 0
    tokens_sent: int = 0
    tokens_received: int = 0
    instance_cost: float = 0.0

    @property
    def tokens(self) -> int:
        return self.tokens_sent + self.tokens_received


def role_stats(trajectory: Trajectory) -> dict[ModelRole, dict]:
    """The model stats of each role: `info.oec` for a student/expert run, else the run's own stats for its role."""
    oec = trajectory.info.oec
    if oec is not None:
        return {"student": oec.student.stats, "expert": oec.expert.stats}
    roles = set(trajectory.step_roles()) or {"expert"}
    return {role: trajectory.info.model_stats if role in roles else {} for role in ROLES}  # type: ignore[misc]


def usage_by_role(trajectories: Iterable[Trajectory]) -> dict[ModelRole, RoleUsage]:
    totals = {role: RoleUsage() for role in ROLES}
    for trajectory in trajectories:
        roles = trajectory.step_roles()
        for role, stats in role_stats(trajectory).items():
            usage = totals[role]
            steps = roles.count(role)
            usage.rollouts += steps > 0
            usage.steps += steps
            for key in ("api_calls", "tokens_sent", "tokens_received", "instance_cost"):
                setattr(usage, key, getattr(usage, key) + stats.get(key, 0))
    return totals


def write_role_stats(output_dir: Path, trajectories: Iterable[Trajectory]) -> dict[ModelRole, RoleUsage]:
    """`run_batch_role_stats.yaml`: the batch's usage per role."""
    totals = usage_by_role(trajectories)
    write_text_atomic(output_dir / ROLE_STATS_FILE, yaml.safe_dump({role: u.model_dump() for role, u in totals.items()}, sort_keys=False))
    return totals
