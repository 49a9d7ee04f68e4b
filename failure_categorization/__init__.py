"""Failure categorisation: an LLM judge sorts failed trajectories into a taxonomy of loss buckets, with charts.

    selection = select_failed(Path("runs/x"), eval_dir=Path("evals/x"))
    judge = Judge(JudgeSettings(model="openai/expert"), load_taxonomy(), api_base=..., api_key="local")
    outcome = categorize(selection.failed, judge, Path("runs/x/failure_categorization"))
    results = build_results(outcome.verdicts, selection, judge.taxonomy, judge.settings)

The command line (`python -m failure_categorization`, `./categorize_failures.sh`) does exactly this, then writes
the results JSON, CSV and charts.
"""

from failure_categorization.answers import Answer, majority_vote, parse_answer
from failure_categorization.charts import write_charts
from failure_categorization.compare import compare
from failure_categorization.errors import CategorizationError
from failure_categorization.judge import Judge, JudgeSettings
from failure_categorization.prompt import JudgePrompt, PromptLimits, build_prompt
from failure_categorization.report import build_results, write_results
from failure_categorization.runner import RunOutcome, categorize
from failure_categorization.selection import FailedTrajectory, Selection, select_failed
from failure_categorization.taxonomy import ANALYSIS_ERROR, DEFAULT_TAXONOMY, Taxonomy, load_taxonomy
from failure_categorization.verdicts import Verdict

__all__ = [
    "ANALYSIS_ERROR",
    "DEFAULT_TAXONOMY",
    "Answer",
    "CategorizationError",
    "FailedTrajectory",
    "Judge",
    "JudgePrompt",
    "JudgeSettings",
    "PromptLimits",
    "RunOutcome",
    "Selection",
    "Taxonomy",
    "Verdict",
    "build_prompt",
    "build_results",
    "categorize",
    "compare",
    "load_taxonomy",
    "majority_vote",
    "parse_answer",
    "select_failed",
    "write_charts",
    "write_results",
]
