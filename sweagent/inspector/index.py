"""The rollouts `sweagent inspect` lists: one row per trajectory file under the given paths, with its eval report.

Rows come from trajectory outlines (`load_trajectory_outline`: `info` and the role of each step), so a run dir of a
thousand multi-megabyte trajectories lists in seconds; a step view loads the one trajectory it shows. A file that
cannot be read, a folder name that is not a traj id or an unreadable report is a row with its reason, never an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from oec.evaluation.errors import EvaluationError
from oec.evaluation.reports import REPORT_FILE, ReportSummary, read_report
from sweagent.ids import id_problem
from sweagent.trajectory import (MINI_TRAJ_SUFFIX, TRAJ_SUFFIX, ModelRole, Trajectory, TrajectoryError,
                                 find_trajectory_file, load_trajectory_outline, split_traj_id)
from sweagent.utils.errors import OECError

ROLES: tuple[ModelRole, ...] = ("student", "expert")
KINDS = {"student+expert": "both models acted", "student only": "the expert never acted",
         "expert only": "the student never acted", "no steps": "no step recorded", "unreadable": "not readable"}
EVAL_SUBDIR = "eval"
"""Where `eval_swesmith.sh` puts a run's eval dir by default; used when no --eval_dir is given."""


class InspectError(OECError):
    """A path or option `sweagent inspect` cannot use; the message is the one line shown."""


@dataclass
class Rollout:
    """One row of the index."""

    run_dir: Path
    traj_id: str
    path: Path
    error: str | None = None
    """Why the trajectory cannot be shown (None when it can)."""
    file_format: str = ""
    exit_status: str | None = None
    submitted: bool = False
    report: ReportSummary | None = None
    report_error: str | None = None
    switch_type: str | None = None
    switch_step_drawn: int | None = None
    switched_at_step: int | None = None
    handovers: int = 0
    steps: dict[str, int] = field(default_factory=dict)
    """Steps per role."""
    cost: dict[str, float] = field(default_factory=dict)
    """Cost per model name (instance_cost as the run recorded it)."""

    @property
    def instance_id(self) -> str:
        return split_traj_id(self.traj_id)[0]

    @property
    def resolved(self) -> bool | None:
        return self.report.resolved if self.report else None

    @property
    def resolved_label(self) -> str:
        if self.report_error:
            return "unreadable report"
        return {True: "resolved", False: "unresolved", None: "not evaluated"}[self.resolved]

    @property
    def switch_label(self) -> str:
        """`drawn / taken` switch step ('-' when the file records no switch, 'never' when the expert never acted)."""
        if self.switch_type is None:
            return "-"
        drawn = "-" if self.switch_step_drawn is None else str(self.switch_step_drawn)
        return f"{drawn} / {'never' if self.switched_at_step is None else self.switched_at_step}"

    @property
    def steps_label(self) -> str:
        return " · ".join(f"{self.steps.get(role, 0)} {role}" for role in ROLES)

    @property
    def cost_items(self) -> list[str]:
        return [f"{name} ${cost:.4g}" for name, cost in self.cost.items()]

    @property
    def cost_label(self) -> str:
        return ", ".join(self.cost_items) or "-"

    @property
    def kind(self) -> str:
        """Which models acted: a key of KINDS."""
        if self.error:
            return "unreadable"
        acted = [role for role in ROLES if self.steps.get(role)]
        return {2: "student+expert", 0: "no steps"}.get(len(acted)) or f"{acted[0]} only"


@dataclass
class RunIndex:
    rollouts: list[Rollout]
    runs: list[Path]
    eval_dirs: dict[Path, Path | None]
    seconds: float = 0.0
    """How long building the index took."""

    def label(self, run_dir: Path) -> str:
        return folder_labels(self.runs)[run_dir]


def folder_labels(folders: list[Path]) -> dict[Path, str]:
    """A short unique name per folder: its own name, numbered by position when two folders share one."""
    names = [folder.name for folder in folders]
    return {folder: folder.name if names.count(folder.name) == 1 else f"{folder.name}-{index + 1}"
            for index, folder in enumerate(folders)}


def _holds_trajectories(folder: Path) -> bool:
    return any(find_trajectory_file(folder, child.name) for child in folder.iterdir() if child.is_dir())


def _run_dirs_below(folder: Path, depth: int = 2) -> list[Path]:
    """Run dirs among the subfolders of `folder`, `depth` levels down (a pipeline output holds runs/<group>/)."""
    found: list[Path] = []
    for child in sorted(folder.iterdir()):
        if child.is_dir() and _holds_trajectories(child):
            found.append(child)
        elif child.is_dir() and depth > 1:
            found += _run_dirs_below(child, depth - 1)
    return found


def _file_source(path: Path) -> tuple[Path, str, Path]:
    """(run dir, traj id, file) of one trajectory file: `<run>/<traj_id>/<traj_id>.traj`, or any `<name>.traj`."""
    suffix = next((s for s in (MINI_TRAJ_SUFFIX, TRAJ_SUFFIX) if path.name.endswith(s)), None)
    if suffix is None:
        raise InspectError(f"{path}: not a trajectory file (<traj_id>/<traj_id>.traj or .traj.json)")
    name = path.name.removesuffix(suffix)
    return (path.parent.parent, name, path) if path.parent.name == name else (path.parent, name, path)


def _sources(path: Path) -> list[tuple[Path, str | None, Path | None]]:
    """(run dir, traj id, file) for one PATH: a trajectory file, or (run dir, None, None) for each run dir of a
    run dir or a folder of run dirs."""
    if path.is_file():
        return [_file_source(path)]
    if not path.is_dir():
        raise InspectError(f"{path}: no such file or directory")
    try:
        runs = [path] if _holds_trajectories(path) else _run_dirs_below(path)
    except OSError as exc:
        raise InspectError(f"{path}: cannot list the folder ({exc.strerror or exc})") from None
    if not runs:
        raise InspectError(f"{path}: no trajectories (<traj_id>/<traj_id>.traj or .traj.json), here or in the "
                           "run dirs below it")
    return [(run, None, None) for run in runs]


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _costs(outline: Trajectory, steps: dict[str, int]) -> dict[str, float]:
    oec = outline.info.oec
    if oec is not None:
        models = {"student": oec.student, "expert": oec.expert}
        return {model.name: _number(model.stats.get("instance_cost")) for role, model in models.items()
                if steps.get(role) or _number(model.stats.get("instance_cost"))}
    name = next((step.model_name for step in outline.trajectory if step.model_name), None) or "model"
    return {name: _number(outline.info.model_stats.get("instance_cost"))}


def _fill_from_outline(rollout: Rollout, outline: Trajectory) -> None:
    info = outline.info
    rollout.exit_status = info.exit_status
    rollout.submitted = bool((info.submission or "").strip())
    roles = outline.step_roles()
    rollout.steps = {role: roles.count(role) for role in ROLES}
    changes = sum(1 for before, after in zip(roles, roles[1:]) if before != after)
    rollout.handovers = max(changes, len(info.oec.handovers) if info.oec is not None else 0)
    if info.oec is not None:
        rollout.file_format = "OEC"
        rollout.switch_type = info.oec.switch_type
        rollout.switch_step_drawn = info.oec.switch_step_drawn
        rollout.switched_at_step = info.oec.switched_at_step
    rollout.cost = _costs(outline, rollout.steps)


def _fill_report(rollout: Rollout, eval_dir: Path | None) -> None:
    report = eval_dir / rollout.traj_id / REPORT_FILE if eval_dir is not None else None
    if report is None or not report.is_file():
        return
    try:
        rollout.report = read_report(report)
    except EvaluationError as exc:
        rollout.report_error = str(exc)


def read_rollout(run_dir: Path, traj_id: str, path: Path, eval_dir: Path | None, default_role: ModelRole) -> Rollout:
    """One row: the trajectory's outline and its report, or the reason either cannot be read."""
    mini = path.name.endswith(MINI_TRAJ_SUFFIX)
    rollout = Rollout(run_dir, traj_id, path, file_format="mini-swe-agent" if mini else "SWE-agent")
    problem = id_problem(traj_id, traj=True)
    if problem is not None:
        rollout.error = f"folder name: {problem}"
        return rollout
    try:
        _fill_from_outline(rollout, load_trajectory_outline(path, default_role))
    except TrajectoryError as exc:
        rollout.error = str(exc).removeprefix(f"{path}: ")
    _fill_report(rollout, eval_dir)
    return rollout


def _rollout_files(run_dir: Path) -> list[tuple[str, Path]]:
    """(folder name, trajectory file) of every rollout folder; unlike `iter_trajectory_files`, a folder name that is
    not a traj id is listed (its row says why) instead of stopping the listing."""
    try:
        children = sorted(run_dir.iterdir())
    except OSError as exc:
        raise InspectError(f"{run_dir}: cannot list the folder ({exc.strerror or exc})") from None
    found = ((child.name, find_trajectory_file(run_dir, child.name)) for child in children if child.is_dir())
    return [(name, path) for name, path in found if path is not None]


def build_index(paths: list[Path], eval_dirs: list[Path] | None = None, default_role: ModelRole = "expert") -> RunIndex:
    """Every rollout under `paths`; `eval_dirs` pairs with the run dirs in order (default: each run's `eval/`)."""
    started = time.perf_counter()
    sources = [source for path in paths for source in _sources(Path(path))]
    runs = list(dict.fromkeys(run for run, _, _ in sources))
    if eval_dirs and len(eval_dirs) != len(runs):
        shown = ", ".join(str(run) for run in runs)
        raise InspectError(f"--eval_dir given {len(eval_dirs)} time(s) for {len(runs)} run dir(s) ({shown}): give one "
                           "per run dir, in order, or none to use each run's eval/")
    for eval_dir in eval_dirs or []:
        if not Path(eval_dir).is_dir():
            raise InspectError(f"{eval_dir}: eval directory does not exist (--eval_dir)")
    pairs = zip(runs, eval_dirs) if eval_dirs else ((run, run / EVAL_SUBDIR) for run in runs)
    evals = {run: Path(e) if Path(e).is_dir() else None for run, e in pairs}
    files = {run: [(name, path) for source, name, path in sources if source == run and name and path] for run in runs}
    whole = {run for run, name, _ in sources if name is None}
    rollouts = [read_rollout(run, name, path, evals[run], default_role)
                for run in runs for name, path in (_rollout_files(run) if run in whole else files[run])]
    return RunIndex(rollouts, runs, evals, time.perf_counter() - started)


@dataclass
class RolloutFilter:
    """What the terminal list shows: rollouts of one kind (KINDS), exit status and resolved label (None: any)."""

    kind: str | None = None
    exit_status: str | None = None
    resolved: str | None = None

    def accepts(self, rollout: Rollout) -> bool:
        return ((self.kind is None or rollout.kind == self.kind)
                and (self.exit_status is None or (rollout.exit_status or "-") == self.exit_status)
                and (self.resolved is None or rollout.resolved_label == self.resolved))

    def describe(self) -> str:
        shown = [f"{name}={value}" for name, value in vars(self).items() if value is not None]
        return "filter: " + (", ".join(shown) if shown else "none")


def next_choice(current: str | None, values: list[str]) -> str | None:
    """The next filter value after `current` in a cycle through None (no filter) and the values present."""
    cycle: list[str | None] = [None, *sorted(set(values))]
    return cycle[(cycle.index(current) + 1) % len(cycle)] if current in cycle else None
