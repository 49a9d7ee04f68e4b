"""Judging many trajectories: threads, a progress bar, and resume through one verdict file per trajectory."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from failure_categorization.judge import Judge
from failure_categorization.prompt import JudgePrompt, build_prompt
from failure_categorization.selection import FailedTrajectory
from failure_categorization.taxonomy import ANALYSIS_ERROR
from failure_categorization.verdicts import Judgement, Usage, Verdict, load_verdict, save_verdict
from sweagent.run.executors import ExecutorConfig, run_tasks
from sweagent.trajectory import TrajectoryError, load_trajectory


@dataclass
class RunOutcome:
    verdicts: list[Verdict]
    """One per selected trajectory, in selection order."""
    asked: int
    reused: int

    @property
    def errors(self) -> int:
        return sum(verdict.category == ANALYSIS_ERROR for verdict in self.verdicts)


def reusable(verdict: Verdict | None, fingerprint: str) -> bool:
    return verdict is not None and verdict.category != ANALYSIS_ERROR and verdict.judge_fingerprint == fingerprint


def prompt_for(case: FailedTrajectory, judge: Judge) -> JudgePrompt:
    trajectory = load_trajectory(case.trajectory_file)
    return build_prompt(case, trajectory, judge.taxonomy, judge.settings.limits)


def split_cases(
    cases: list[FailedTrajectory], judge: Judge, output_dir: Path
) -> tuple[dict[str, Verdict], list[FailedTrajectory]]:
    """(verdicts a rerun keeps, cases it must ask about: no verdict yet, an analysis_error, or another judge's)."""
    kept: dict[str, Verdict] = {}
    todo: list[FailedTrajectory] = []
    for case in cases:
        verdict = load_verdict(output_dir, case.traj_id)
        if reusable(verdict, judge.fingerprint):
            kept[case.traj_id] = verdict
        else:
            todo.append(case)
    return kept, todo


def _judge_one(case: FailedTrajectory, judge: Judge, output_dir: Path) -> Verdict:
    try:
        judgement = judge.judge(prompt_for(case, judge))
    except TrajectoryError as exc:  # the file changed or vanished since it was selected
        judgement = Judgement(category=ANALYSIS_ERROR, samples=[], usage=Usage(), error=str(exc))
    verdict = Verdict(
        **judgement.model_dump(),
        traj_id=case.traj_id,
        instance_id=case.instance_id,
        repository=case.repository,
        exit_status=case.exit_status,
        trajectory_file=str(case.trajectory_file),
        judge_model=judge.settings.model,
        judge_fingerprint=judge.fingerprint,
    )
    save_verdict(output_dir, verdict)
    return verdict


def categorize(
    cases: list[FailedTrajectory],
    judge: Judge,
    output_dir: Path,
    num_workers: int = 1,
    console: Console | None = None,
) -> RunOutcome:
    """Judge every case that has no reusable verdict in `output_dir`; each verdict is saved as soon as it exists."""
    kept, todo = split_cases(cases, judge, output_dir)
    progress = Progress(
        TextColumn("[bold]judging failures"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[errors]} analysis errors"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
    )
    with progress:
        task = progress.add_task("judge", total=len(todo), errors=0)
        errors = 0
        # run-batch's pool; on Ctrl-C it drops the queue: only requests already sent finish, and their verdicts are kept
        for _, verdict, error in run_tasks(ExecutorConfig(), partial(_judge_one, judge=judge, output_dir=output_dir),
                                           todo, max(1, num_workers)):
            if error is not None:
                raise error
            kept[verdict.traj_id] = verdict
            errors += verdict.category == ANALYSIS_ERROR
            progress.update(task, advance=1, errors=errors)
    return RunOutcome(verdicts=[kept[case.traj_id] for case in cases], asked=len(todo), reused=len(cases) - len(todo))
