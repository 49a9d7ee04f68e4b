"""Which trajectories of a run failed, grouped by exit status, and which repository each belongs to.

A trajectory failed when its eval report says unresolved, when it submitted no patch, or when its exit status is
an `exit_*` one (SWE-agent's auto-submitted `submitted (exit_cost)` counts as `exit_cost`). Trajectories that submitted
a patch but have no report are not judged: we cannot tell whether they failed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import track

from failure_categorization.errors import CategorizationError
from oec.evaluation.errors import EvaluationError
from oec.evaluation.reports import REPORT_FILE, read_report
from sweagent.instance import TaskInstance
from sweagent.trajectory import TrajectoryError, iter_trajectory_files, load_trajectory, split_traj_id

_AUTO_SUBMITTED = re.compile(r"^submitted \((?P<status>exit_\w+)\)$")
_SWEBENCH_NUMBER = re.compile(r"-\d+$")


@dataclass(frozen=True)
class FailedTrajectory:
    traj_id: str
    instance_id: str
    repository: str
    exit_status: str
    trajectory_file: Path
    problem_statement: str = ""
    """From the instance file; empty means the prompt takes it from the trajectory."""


@dataclass
class Selection:
    failed: list[FailedTrajectory] = field(default_factory=list)
    malformed: list[tuple[str, str]] = field(default_factory=list)
    """(file, reason) of trajectories or reports that could not be read; they are skipped."""
    not_evaluated: list[str] = field(default_factory=list)
    """Traj ids that submitted a patch but have no eval report."""
    resolved: int = 0


def repository_from_id(instance_id: str) -> str:
    """`owner__repo.commit__...` → `owner/repo`; `repo.xxx__...` → `repo`; SWE-bench `owner__repo-123` → `owner/repo`."""
    head = instance_id.split(".", 1)[0]
    if "__" not in head:
        return head or instance_id
    owner, repo = head.split("__", 1)
    repo = repo.split("__", 1)[0]
    if "." not in instance_id:
        repo = _SWEBENCH_NUMBER.sub("", repo)
    return f"{owner}/{repo}"


def repository_of(instance: TaskInstance | None, instance_id: str) -> str:
    """Prefer the instance file's `repo`, except names in SWE-smith's mirror form (`<org>/owner__repo.commit`)."""
    if instance is not None and instance.repo:
        owner, _, name = instance.repo.partition("/")
        if name and owner != "swesmith" and "__" not in name:
            return instance.repo
        return repository_from_id(name or owner)
    return repository_from_id(instance_id)


def failure_status(exit_status: str | None, resolved: bool | None, has_patch: bool) -> str | None:
    """The exit status a failed trajectory is grouped under, or None if it did not (or cannot be said to) fail."""
    status = (exit_status or "").strip()
    auto = _AUTO_SUBMITTED.match(status)
    if auto:
        status = auto["status"]
    if status.startswith("exit_"):
        return status
    if resolved is False or (resolved is None and not has_patch):
        return status or "unknown"
    return None


def read_resolved(eval_dir: Path | None, traj_id: str) -> bool | None:
    """`resolved` from `<eval_dir>/<traj_id>/report.json`, or None when there is no report."""
    if eval_dir is None:
        return None
    path = eval_dir / traj_id / REPORT_FILE
    return read_report(path).resolved if path.is_file() else None


def select_failed(
    run_dir: Path,
    eval_dir: Path | None = None,
    instances: dict[str, TaskInstance] | None = None,
    traj_filter: str | None = None,
    limit_per_status: int | None = None,
    show_progress: bool = True,
) -> Selection:
    """Read every trajectory of `run_dir` and keep the failed ones, sorted by exit status then traj id.

    `instances` (when given) both restricts the selection to its instance ids and supplies repository names and
    problem statements; `traj_filter` is a regular expression searched in the traj id.
    """
    if eval_dir is not None and not eval_dir.is_dir():
        raise CategorizationError(f"{eval_dir}: eval directory does not exist (--eval_dir)")
    try:
        pattern = re.compile(traj_filter) if traj_filter else None
    except re.error as exc:
        raise CategorizationError(f"--filter: not a valid regular expression ({exc})") from None
    try:
        files = list(iter_trajectory_files(run_dir))
    except TrajectoryError as exc:
        raise CategorizationError(f"{exc} (--run_dir)") from None
    selection = Selection()
    by_status: dict[str, list[FailedTrajectory]] = defaultdict(list)
    reading = track(files, "reading trajectories", disable=not show_progress, console=Console(stderr=True))
    for path in reading:
        traj_id = path.parent.name
        instance_id = split_traj_id(traj_id)[0]
        if pattern is not None and not pattern.search(traj_id):
            continue
        if instances is not None and instance_id not in instances:
            continue
        try:
            info = load_trajectory(path).info
            resolved = read_resolved(eval_dir, traj_id)
        except (TrajectoryError, EvaluationError) as exc:
            selection.malformed.append((str(path), str(exc)))
            continue
        status = failure_status(info.exit_status, resolved, has_patch=bool((info.submission or "").strip()))
        if status is None:
            if resolved:
                selection.resolved += 1
            else:
                selection.not_evaluated.append(traj_id)
            continue
        instance = instances.get(instance_id) if instances else None
        by_status[status].append(
            FailedTrajectory(
                traj_id=traj_id,
                instance_id=instance_id,
                repository=repository_of(instance, instance_id),
                exit_status=status,
                trajectory_file=path,
                problem_statement=instance.problem_statement if instance else "",
            )
        )
    for status in sorted(by_status):
        selection.failed.extend(by_status[status][:limit_per_status])
    return selection
