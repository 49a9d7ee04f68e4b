"""Failure categorisation: an LLM judge sorts failed trajectories into a taxonomy of loss buckets, with charts.

    selection = select_failed(Path("runs/x"), eval_dir=Path("evals/x"))
    judge = Judge(JudgeSettings(model="openai/expert"), load_taxonomy(), api_base=..., api_key="local")
    outcome = categorize(selection.failed, judge, Path("runs/x/failure_categorization"))
    results = build_results(outcome.verdicts, selection, judge.taxonomy, judge.settings)

The command line (`python -m failure_categorization`, `./categorize_failures.sh`) does exactly this, then writes
the results JSON, CSV and charts.
"""

from sweagent.utils.lazy import lazy_exports

_EXPORTS = {
    "Answer": "failure_categorization.answers",
    "majority_vote": "failure_categorization.answers",
    "parse_answer": "failure_categorization.answers",
    "write_charts": "failure_categorization.charts",
    "compare": "failure_categorization.compare",
    "CategorizationError": "failure_categorization.errors",
    "Judge": "failure_categorization.judge",
    "JudgeSettings": "failure_categorization.judge",
    "JudgePrompt": "failure_categorization.prompt",
    "PromptLimits": "failure_categorization.prompt",
    "build_prompt": "failure_categorization.prompt",
    "build_results": "failure_categorization.report",
    "write_results": "failure_categorization.report",
    "RunOutcome": "failure_categorization.runner",
    "categorize": "failure_categorization.runner",
    "FailedTrajectory": "failure_categorization.selection",
    "Selection": "failure_categorization.selection",
    "select_failed": "failure_categorization.selection",
    "ANALYSIS_ERROR": "failure_categorization.taxonomy",
    "DEFAULT_TAXONOMY": "failure_categorization.taxonomy",
    "Taxonomy": "failure_categorization.taxonomy",
    "load_taxonomy": "failure_categorization.taxonomy",
    "Verdict": "failure_categorization.verdicts",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)  # the judge imports litellm (seconds): only when asked for
__all__ = sorted(_EXPORTS)
