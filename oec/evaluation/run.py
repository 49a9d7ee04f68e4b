"""One evaluation run: plan (resume, unknown instances), grade with the chosen backend, summarise."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from oec.evaluation.docker_harness import evaluate_with_docker
from oec.evaluation.errors import EvaluationError
from oec.evaluation.local_harness import PredictionResult, evaluate_locally
from oec.evaluation.options import DEFAULT_INSTANCES, EVAL_SUBDIR, Backend
from oec.evaluation.plan import plan_evaluation
from oec.evaluation.summary import build_summary, print_summary, write_summary



@dataclass
class EvalRun:
    eval_dir: Path
    summary: dict[str, Any]
    graded: list[PredictionResult]
    """What this call graded with the local backend, with timings (empty for docker and for fully resumed runs)."""


def default_run_id(run_dir: Path) -> str:
    """SWE-smith's run id (it names docker containers): `oec.<run dir name>`, restricted to docker's characters."""
    return "oec." + re.sub(r"[^A-Za-z0-9_.-]", "_", run_dir.resolve().name)


def evaluate_run(
    run_dir: Path,
    *,
    instances_file: Path = DEFAULT_INSTANCES,
    eval_dir: Path | None = None,
    backend: Backend = "local",
    workers: int = 1,
    timeout_s: float | None = None,
    run_id: str | None = None,
    console: Console | None = None,
) -> EvalRun:
    """Grade every prediction of `run_dir` that has no report yet, then write and print the run summary."""
    if workers < 1:
        raise EvaluationError(f"--num_workers: expected a positive number of workers, got {workers}")
    if timeout_s is not None and timeout_s <= 0:
        raise EvaluationError(f"--timeout: expected a positive number of seconds, got {timeout_s:g}")
    if backend == "docker" and timeout_s is not None:
        raise EvaluationError("--timeout: only the local backend takes it (SWE-smith's harness uses its profiles' timeouts)")
    if backend == "local" and run_id is not None:
        raise EvaluationError("--run_id: only the docker backend takes it (it names SWE-smith's run)")
    console = console or Console()
    eval_dir = eval_dir or run_dir / EVAL_SUBDIR
    plan = plan_evaluation(run_dir, instances_file, eval_dir)
    for warning in plan.warnings:
        console.print(f"[eval_swesmith] warning: {warning}", highlight=False, markup=False)
    console.print(
        f"[eval_swesmith] {len(plan.predictions)} predictions: {len(plan.todo)} to grade ({backend}), "
        f"{len(plan.done)} already graded, {len(plan.skipped)} skipped → {eval_dir}",
        highlight=False,
    )
    graded: list[PredictionResult] = []
    if backend == "local":
        batch = evaluate_locally(plan.todo, eval_dir, workers=workers, timeout_s=timeout_s, console=console)
        graded, errors = batch.results, batch.errors
    else:
        errors = evaluate_with_docker(plan.todo, instances_file, eval_dir, run_id=run_id or default_run_id(run_dir), workers=workers)
    summary = build_summary(plan, run_dir, eval_dir, errors)
    write_summary(eval_dir, summary)
    print_summary(summary, console)
    return EvalRun(eval_dir, summary, graded)
