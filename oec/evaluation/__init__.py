"""Evaluation: grade a run's predictions against unit tests and write SWE-smith-format reports.

    from oec.evaluation import evaluate_run
    run = evaluate_run(Path("trajectories/run1"), workers=2)      # local sandbox; backend="docker" on clusters
    run.summary["resolved"], run.summary["total"]

`evaluate_prediction` grades one prediction; `read_report` reads a report written by either backend.
"""

from oec.evaluation.errors import EvaluationError
from oec.evaluation.local_harness import PredictionResult, evaluate_prediction
from oec.evaluation.plan import EvalJob
from oec.evaluation.reports import read_report
from oec.evaluation.run import EvalRun, evaluate_run

__all__ = ["EvalJob", "EvalRun", "EvaluationError", "PredictionResult", "evaluate_prediction", "evaluate_run", "read_report"]
