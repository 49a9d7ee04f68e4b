"""Evaluation: grade a run's predictions against unit tests and write SWE-smith-format reports.

    from oec.evaluation import evaluate_run
    run = evaluate_run(Path("trajectories/run1"), workers=2)      # local sandbox; backend="docker" on clusters
    run.summary["resolved"], run.summary["total"]

`evaluate_prediction` grades one prediction; `read_report` reads a report written by either backend.
"""

from sweagent.utils.lazy import lazy_exports

_EXPORTS = {"EvaluationError": "oec.evaluation.errors", "PredictionResult": "oec.evaluation.local_harness",
            "evaluate_prediction": "oec.evaluation.local_harness", "EvalJob": "oec.evaluation.plan",
            "read_report": "oec.evaluation.reports", "EvalRun": "oec.evaluation.run", "evaluate_run": "oec.evaluation.run"}
__getattr__ = lazy_exports(__name__, _EXPORTS)  # the harness imports swebench (seconds): only when asked for
__all__ = sorted(_EXPORTS)
