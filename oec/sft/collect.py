"""Which trajectories there are and which eval report belongs to each.

With as many eval dirs as run dirs, run i is joined with eval dir i, so several runs may reuse traj ids (e.g. the
same instances under two seeds). Otherwise the eval dirs are pooled by traj id; a traj id that two runs share, or
that two eval dirs report, is then ambiguous and its trajectories are not joined.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sweagent.trajectory import iter_trajectory_files, split_traj_id

from oec.sft.reports import report_files


@dataclass(frozen=True)
class Candidate:
    """One trajectory file and what is known about its report before anything is read."""

    traj_file: Path
    source_run: str
    reports: tuple[Path, ...]
    """The matching report files: none (missing), one, or several (ambiguous)."""
    ambiguous: bool = False

    @property
    def traj_id(self) -> str:
        return self.traj_file.parent.name

    @property
    def instance_id(self) -> str:
        return split_traj_id(self.traj_id)[0]

    @property
    def ref(self) -> str:
        """How the summary names this trajectory."""
        return f"{self.source_run}/{self.traj_id}"


@dataclass
class Collection:
    candidates: list[Candidate] = field(default_factory=list)
    orphan_reports: list[Path] = field(default_factory=list)
    """Reports whose trajectory is in none of the run dirs."""


def collect(runs: list[str], evals: list[str]) -> Collection:
    reports = [report_files(eval_dir) for eval_dir in evals]
    trajectories = [(run, list(iter_trajectory_files(run))) for run in runs]
    collection = Collection()
    if len(evals) == len(runs):
        for (run, files), run_reports in zip(trajectories, reports):
            traj_ids = {path.parent.name for path in files}
            for path in files:
                found = run_reports.get(path.parent.name)
                collection.candidates.append(Candidate(path, run, (found,) if found else ()))
            collection.orphan_reports += [path for traj_id, path in run_reports.items() if traj_id not in traj_ids]
        return collection
    pooled: dict[str, list[Path]] = {}
    for run_reports in reports:
        for traj_id, path in run_reports.items():
            pooled.setdefault(traj_id, []).append(path)
    uses = Counter(path.parent.name for _, files in trajectories for path in files)
    for run, files in trajectories:
        for path in files:
            found = tuple(pooled.get(path.parent.name, ()))
            ambiguous = len(found) > 1 or (len(found) == 1 and uses[path.parent.name] > 1)
            collection.candidates.append(Candidate(path, run, found, ambiguous))
    collection.orphan_reports = [p for traj_id, paths in sorted(pooled.items()) if traj_id not in uses for p in paths]
    return collection
