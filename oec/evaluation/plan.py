"""What an evaluation run has to do: the run's predictions, their instances, and which ones still need a report.

Shared by both backends, so resume (a traj id with a `report.json` is done) and the handling of predictions for
unknown instances (reported, skipped) are the same whichever backend grades.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from oec.evaluation.errors import EvaluationError
from oec.evaluation.reports import REPORT_FILE
from sweagent.instance import TaskInstance, load_instances
from sweagent.predictions import PREDS_FILE, Prediction, instance_id_of, sync_preds_json


@dataclass(frozen=True)
class EvalJob:
    prediction: Prediction
    instance: TaskInstance

    @property
    def traj_id(self) -> str:
        return self.prediction.key


@dataclass
class EvalPlan:
    predictions: dict[str, Prediction]
    """Every prediction of the run, keyed by traj id."""
    instances: dict[str, TaskInstance]
    todo: list[EvalJob] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    """Traj ids that already have a report (an earlier, interrupted run graded them)."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Traj id → why it cannot be graded (e.g. its instance is not in the instances file)."""
    warnings: list[str] = field(default_factory=list)
    """One line each: a stale preds.json that was rebuilt, unreadable .pred files that were skipped."""


def run_predictions(run_dir: Path) -> tuple[dict[str, Prediction], list[str]]:
    """The run's predictions (`preds.json`, rebuilt from the `.pred` files when missing or stale) and warnings."""
    if not run_dir.is_dir():
        raise EvaluationError(f"{run_dir}: run directory does not exist (argument RUN_DIR)")
    synced = sync_preds_json(run_dir)
    warnings = [line for line in (synced.stale, synced.collected.unreadable_line()) if line]
    if not synced.predictions:
        skipped = synced.collected.unreadable_line()
        found = f" ({skipped})" if skipped else ""
        raise EvaluationError(f"{run_dir}: no {PREDS_FILE} and no readable <traj_id>/<traj_id>.pred files to merge into one{found}")
    return synced.predictions, warnings


def plan_evaluation(run_dir: Path, instances_file: Path, eval_dir: Path) -> EvalPlan:
    """Sort the run's predictions into to-do, done (resume) and skipped (unknown instance)."""
    predictions, warnings = run_predictions(run_dir)
    instances = {instance.instance_id: instance for instance in load_instances(instances_file)}
    plan = EvalPlan(predictions, instances, warnings=warnings)
    for traj_id, prediction in sorted(predictions.items()):
        instance = instances.get(instance_id_of(prediction))
        if instance is None:
            plan.skipped[traj_id] = f"instance '{instance_id_of(prediction)}' is not in {instances_file}"
        elif (eval_dir / traj_id / REPORT_FILE).is_file():
            plan.done.append(traj_id)
        else:
            plan.todo.append(EvalJob(prediction, instance))
    return plan
