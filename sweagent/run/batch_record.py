"""What a run dir holds, kept in memory while run-batch runs: the finished rollouts (their outlines), the skipped
branches, and the two summary files written from them after every rollout.

Earlier releases re-read every `.traj` after each rollout, which made a batch O(N²) in trajectory parsing. Now the
run dir is read once at the start (outlines only: `info` and the step roles, see `load_trajectory_outline`) and each
result updates the record; the files are rewritten from it at most every `WRITE_INTERVAL_S` while the batch runs and
once at its end, so the bookkeeping stays O(N) whatever the size of the trajectories (scripts/bench/batch_bookkeeping.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from sweagent.agent.switching.accounting import write_role_stats
from sweagent.run.run_single import is_infrastructure_failure
from sweagent.trajectory import Trajectory, TrajectoryError, TrajectoryStep, iter_trajectory_files, load_trajectory_outline
from sweagent.utils.files import write_text_atomic

EXIT_STATUS_FILE = "run_batch_exit_statuses.yaml"
WRITE_INTERVAL_S = 2.0
"""While the batch runs, the summary files trail its results by at most this long (a rerun rebuilds them anyway)."""
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: the same text, about 7x faster for long id lists
SKIPPED_SUFFIX = ".skipped.yaml"
"""`<out>/<traj_id>/<traj_id>.skipped.yaml`: a branch that was not run, with its reason (see `run/branching.py`)."""


def outline_of(trajectory: Trajectory) -> Trajectory:
    """What the record keeps of a rollout: `info` and each step's role and model name (no queries, no history)."""
    return Trajectory(trajectory=[TrajectoryStep(model_role=s.model_role, model_name=s.model_name) for s in trajectory.trajectory],
                      info=trajectory.info)


def finished_outline(path: Path) -> Trajectory | None:
    """The outline of a finished rollout; None for a missing, partial or infrastructure-failed one.

    The .pred is written last, so a rollout killed between its final .traj and its .pred counts as partial.
    """
    if not path.is_file() or not path.with_name(path.parent.name + ".pred").is_file():
        return None
    try:
        outline = load_trajectory_outline(path)
    except TrajectoryError:
        return None
    return None if is_infrastructure_failure(outline) else outline


def read_skip_reason(folder: Path) -> str | None:
    marker = folder / f"{folder.name}{SKIPPED_SUFFIX}"
    if not marker.is_file():
        return None
    try:
        return str(yaml.safe_load(marker.read_text(encoding="utf-8"))["reason"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None  # an unreadable marker: the branch is tried again


class BatchRecord:
    """Finished rollouts and skipped branches of one run dir, by traj id."""

    def __init__(self, output_dir: Path):
        self.output_dir = output_dir
        self.finished: dict[str, Trajectory] = {}
        self.skipped: dict[str, str] = {}
        self._written_at = 0.0

    @classmethod
    def load(cls, output_dir: Path) -> BatchRecord:
        """Read what earlier runs left, once: every folder's outline (or skip marker)."""
        record = cls(output_dir)
        for child in sorted(output_dir.iterdir()):
            reason = read_skip_reason(child) if child.is_dir() else None
            if reason is not None:
                record.skipped[child.name] = reason
        for path in iter_trajectory_files(output_dir):
            outline = finished_outline(path)
            if outline is not None:
                record.finished[path.parent.name] = outline
        return record

    def is_done(self, traj_id: str) -> bool:
        return traj_id in self.finished or traj_id in self.skipped

    def forget(self, traj_id: str) -> None:
        """A rollout about to be run again."""
        self.finished.pop(traj_id, None)
        self.skipped.pop(traj_id, None)

    def add(self, traj_id: str, outline: Trajectory | None, skipped: str | None = None) -> None:
        """One result: a finished rollout's outline, a skipped branch's reason, or neither (unfinished)."""
        self.forget(traj_id)
        if skipped is not None:
            self.skipped[traj_id] = skipped
        elif outline is not None and not is_infrastructure_failure(outline):
            self.finished[traj_id] = outline

    def write(self) -> dict[str, list[str]]:
        """`run_batch_exit_statuses.yaml` (plus `skipped_branches` when there are any) and the usage per role."""
        by_status: dict[str, list[str]] = {}
        for traj_id in sorted(self.finished):
            status = self.finished[traj_id].info.exit_status
            if status:
                by_status.setdefault(status, []).append(traj_id)
        data: dict = {"instances_by_exit_status": by_status}
        if self.skipped:
            data["skipped_branches"] = dict(sorted(self.skipped.items()))
        write_text_atomic(self.output_dir / EXIT_STATUS_FILE, yaml.dump(data, Dumper=_DUMPER, sort_keys=True))
        write_role_stats(self.output_dir, self.finished.values())
        self._written_at = time.monotonic()
        return by_status

    def write_soon(self) -> None:
        """`write`, unless the files were written less than `WRITE_INTERVAL_S` ago."""
        if time.monotonic() - self._written_at >= WRITE_INTERVAL_S:
            self.write()
