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
from sweagent.predictions import (
    PREDS_FILE,
    Prediction,
    collect_predictions,
    instance_id_of,
    load_preds_json,
    merge_predictions,
)


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


def run_predictions(run_dir: Path) -> dict[str, Prediction]:
    """The run's `preds.json`, merged from its `<traj_id>/<traj_id>.pred` files first if it does not exist."""
    if not run_dir.is_dir():
        raise EvaluationError(f"{run_dir}: run directory does not exist (argument RUN_DIR)")
    preds_file = run_dir / PREDS_FILE
    if preds_file.is_file():
        return load_preds_json(preds_file)
    if not collect_predictions(run_dir):
        raise EvaluationError(f"{run_dir}: no {PREDS_FILE} and no <traj_id>/<traj_id>.pred files to merge into one")
    return merge_predictions([run_dir], preds_file)


def plan_evaluation(run_dir: Path, instances_file: Path, eval_dir: Path) -> EvalPlan:
    """Sort the run's predictions into to-do, done (resume) and skipped (unknown instance)."""
    predictions = run_predictions(run_dir)
    instances = {instance.instance_id: instance for instance in load_instances(instances_file)}
    plan = EvalPlan(predictions, instances)
    for traj_id, prediction in sorted(predictions.items()):
        instance = instances.get(instance_id_of(prediction))
        if instance is None:
            plan.skipped[traj_id] = f"instance '{instance_id_of(prediction)}' is not in {instances_file}"
        elif (eval_dir / traj_id / REPORT_FILE).is_file():
            plan.done.append(traj_id)
        else:
            plan.todo.append(EvalJob(prediction, instance))
    return plan
