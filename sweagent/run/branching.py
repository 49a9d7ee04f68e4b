"""Branching: N expert continuations of one student prefix (`run-batch --branches N`).

Branch 0 of a prefix `<iid>__r<k>` is an ordinary rollout, `<iid>__r<k>__b0`, whose schedule draws are keyed by the
id the unbranched rollout has (`<iid>__r<k>`, or `<iid>` with one rollout per instance), so it hands over where that
rollout would; its steps before the first expert step are the prefix. Every other branch `<iid>__r<k>__b<j>` starts a fresh environment and replays the prefix: the student's
recorded answers are given back instead of asking the student again (no model call), every command runs again,
and each step must come out exactly as recorded (action, observation, and the messages the student was shown).
The expert then takes over at the same step, for the same reason, with the same draws. A step that comes out
otherwise ends the branch before any expert call: it is skipped, the step and what differed recorded in
`<bid>/<bid>.skipped.yaml`, its partial trajectory kept as `<bid>.diverged.traj`.

Lineage is in `info.oec`: `prefix_id`, `branch`, `prefix_steps` (the number of steps shared), and for a replayed
branch `prefix_source` (branch 0's id). Each step keeps its `model_role`. The prefix's student usage is counted once,
in branch 0: a replayed branch's `info.oec.student.stats` holds only the calls the student made after the prefix.
"""

from __future__ import annotations

import functools
import shutil
from typing import TYPE_CHECKING, Any

import yaml

from sweagent.agent.agents import AgentConfig, DefaultAgent, Profile
from sweagent.agent.models import InstanceStats, ModelOutput
from sweagent.ids import branch_traj_id
from sweagent.run.batch_record import SKIPPED_SUFFIX
from sweagent.trajectory import OECInfo, Trajectory, TrajectoryStep, load_trajectory, traj_path
from sweagent.utils.files import write_text_atomic

if TYPE_CHECKING:
    from pathlib import Path

    from sweagent.agent.switching_model import ModelSwitcher

DIVERGED_SUFFIX = ".diverged.traj"
COMPARED = ("action", "observation", "query")
"""What a replayed step must reproduce; `query` holds every earlier observation as the student was shown it."""


class BranchDiverged(Exception):
    """A replayed prefix step came out otherwise than recorded, so this environment is not the prefix's."""


class PrefixReplayModel:
    """The student while a prefix is replayed: gives back the recorded answers in order and asks no model."""

    def __init__(self, name: str, steps: list[TrajectoryStep]):
        self.name = name
        self.stats = InstanceStats()
        self._steps = steps
        self._turn = 0

    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> ModelOutput:
        if self._turn >= len(self._steps):
            raise BranchDiverged(f"the replayed student was asked for step {self._turn}, past the prefix's {len(self._steps)} steps")
        step = self._steps[self._turn]
        self._turn += 1
        return ModelOutput(content=step.response, tool_calls=step.extra_info.get("tool_calls"))


def _difference(expected: Any, got: Any) -> str:
    """Where two recorded values first differ, on one line."""
    left, right = str(expected), str(got)
    at = next((i for i, (a, b) in enumerate(zip(left, right)) if a != b), min(len(left), len(right)))
    return f"first difference at character {at}: expected {ascii(left[at:at + 60])}, got {ascii(right[at:at + 60])}"


class BranchSwitcher:
    """The `Switcher` of one branch: the schedule's own switcher, behind a replay of the prefix (branches > 0).

    The loop asks it who takes each step; before handing out step i (i <= prefix length) it checks step i-1 against
    the prefix and puts the recorded step in its place, so every branch holds the prefix byte for byte.
    """

    def __init__(self, inner: ModelSwitcher, *, prefix_id: str, branch: int, prefix: Trajectory | None):
        self.inner = inner
        self.resets_history = inner.resets_history
        self.prefix_id, self.branch = prefix_id, branch
        self.prefix = prefix
        self.agent: DefaultAgent | None = None
        """The agent this switcher serves (set by `build_branch_agent`): the replay checks its steps."""
        self.profiles = list(inner.profiles)
        self._prefix_steps: list[TrajectoryStep] = []
        self._replaying = prefix is not None
        if prefix is not None:
            oec = prefix.info.oec
            assert oec is not None and oec.switched_at_step is not None, "a replayed branch needs a prefix that switched"
            self._prefix_steps = prefix.trajectory[: oec.switched_at_step]
            self._switch = next(h for h in oec.handovers if h.step == oec.switched_at_step and h.to_role == "expert")
            student = inner.student
            self.profiles.insert(0, Profile(role="student", model=PrefixReplayModel(student.model.name, self._prefix_steps),
                                            templates=student.templates, tools=student.tools,
                                            history_processors=student.history_processors))

    def _check(self, index: int) -> None:
        assert self.agent is not None
        done, recorded = self.agent.steps[index], self._prefix_steps[index]
        for key in COMPARED:
            if getattr(done, key) != getattr(recorded, key):
                raise BranchDiverged(f"prefix step {index}: the {key} differs from {self.prefix_id}'s branch 0 "
                                     f"({_difference(getattr(recorded, key), getattr(done, key))})")
        self.agent.steps[index] = recorded

    def profile_for_step(self, step: int) -> Profile | None:
        if not self._replaying:
            return self.inner.profile_for_step(step)
        if step > 0:
            self._check(step - 1)
        if step < len(self._prefix_steps):
            return self.profiles[0]
        self._replaying = False
        self.inner.plan.record_hand_over(step, "expert", self._switch.reason)
        return self.inner.expert

    def profile_after_format_error(self, step: int) -> Profile:
        if self._replaying:
            raise BranchDiverged(f"prefix step {step}: the recorded student answer no longer parses")
        return self.inner.profile_after_format_error(step)

    def after_step(self, action: str) -> None:
        if not self._replaying:
            self.inner.after_step(action)

    def total_stats(self) -> InstanceStats:
        return self.inner.total_stats()

    def oec_info(self) -> OECInfo:
        info = self.inner.oec_info()
        info.prefix_id, info.branch = self.prefix_id, self.branch
        if self.prefix is None:
            info.prefix_steps = info.switched_at_step
        else:
            info.prefix_steps, info.prefix_source = len(self._prefix_steps), branch_traj_id(self.prefix_id, 0)
        return info


def build_branch_agent(agent_config: AgentConfig, *, instance_id: str, replay_config: str | None, seed: int,
                       traj_id: str, prefix_id: str, branch: int, prefix: Trajectory | None, draws_id: str) -> DefaultAgent:
    """The agent of one branch (the signature of `run_single.build_agent`, plus the lineage and the id that keys the
    schedule's draws, the same for every branch)."""
    inner = agent_config.model.build(agent_config, instance_id=instance_id, seed=seed, traj_id=draws_id)
    switcher = BranchSwitcher(inner, prefix_id=prefix_id, branch=branch, prefix=prefix)
    agent = DefaultAgent(agent_config, switcher.profiles[0], switcher=switcher, replay_config=replay_config)
    switcher.agent = agent
    return agent


def branch_builder(prefix_id: str, branch: int, prefix: Trajectory | None, draws_id: str) -> Any:
    return functools.partial(build_branch_agent, prefix_id=prefix_id, branch=branch, prefix=prefix, draws_id=draws_id)


def load_prefix(output_dir: Path, prefix_id: str) -> tuple[Trajectory | None, str]:
    """Branch 0's trajectory when it has a student prefix to continue; else None and why there is none."""
    trajectory = load_trajectory(traj_path(output_dir, branch_traj_id(prefix_id, 0)))
    oec = trajectory.info.oec
    if oec is None or oec.switched_at_step is None:
        return None, (f"branch 0 ended ({trajectory.info.exit_status} after {len(trajectory.trajectory)} steps) before the "
                      "expert acted: no student prefix to continue")
    return trajectory, ""


def record_skip(output_dir: Path, traj_id: str, prefix_id: str, branch: int, reason: str, *, diverged: bool) -> None:
    """`<bid>.skipped.yaml` with the reason. A diverged branch's partial trajectory is kept beside it as
    `<bid>.diverged.traj`, its .traj and .patch removed so that no later stage takes it for a rollout; a branch that
    never ran starts from an empty folder (nothing of an earlier prefix's branch stays)."""
    folder = output_dir / traj_id
    if not diverged:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    path = traj_path(output_dir, traj_id)
    kept = None
    if diverged and path.is_file():
        kept = path.with_name(traj_id + DIVERGED_SUFFIX)
        path.replace(kept)
    (folder / f"{traj_id}.patch").unlink(missing_ok=True)
    write_text_atomic(folder / f"{traj_id}{SKIPPED_SUFFIX}", yaml.safe_dump(
        {"prefix_id": prefix_id, "branch": branch, "reason": reason, "diverged_trajectory": kept and kept.name}, sort_keys=False))
