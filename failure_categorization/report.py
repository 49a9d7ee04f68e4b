"""The results of a run: a JSON with a summary and one entry per trajectory, and the same entries as CSV."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from failure_categorization.judge import JudgeSettings
from failure_categorization.selection import Selection
from failure_categorization.taxonomy import ANALYSIS_ERROR, Taxonomy
from failure_categorization.verdicts import Usage, Verdict
from sweagent.utils.files import write_json_atomic, write_text_atomic

RESULTS_JSON = "failure_categories.json"
RESULTS_CSV = "failure_categories.csv"
CSV_COLUMNS = [
    "traj_id", "instance_id", "repository", "exit_status", "category", "description", "flagged", "agreement",
    "prompt_tokens", "completion_tokens", "cost", "calls", "trajectory_file", "error",
]


def category_order(taxonomy: Taxonomy, verdicts: list[Verdict]) -> list[str]:
    """Taxonomy order, then analysis_error, then anything else found (verdicts of an older taxonomy)."""
    order = [*taxonomy.names, ANALYSIS_ERROR]
    return order + sorted({v.category for v in verdicts} - set(order))


def _crosstab(verdicts: list[Verdict], key: str, categories: list[str]) -> dict[str, dict[str, int]]:
    """{group: {category: count}} with every category present (zeros included) so tables line up."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for verdict in verdicts:
        counts[getattr(verdict, key)][verdict.category] += 1
    return {group: {c: counts[group][c] for c in categories} for group in sorted(counts)}


def entry(verdict: Verdict) -> dict[str, Any]:
    return {
        "traj_id": verdict.traj_id,
        "instance_id": verdict.instance_id,
        "repository": verdict.repository,
        "exit_status": verdict.exit_status,
        "category": verdict.category,
        "description": verdict.description,
        "flagged": verdict.flagged,
        "raw_categories": [s.raw_category for s in verdict.samples if s.flagged],
        "agreement": verdict.agreement,
        "trajectory_file": verdict.trajectory_file,
        "usage": verdict.usage.model_dump(),
        "error": verdict.error,
    }


def build_results(
    verdicts: list[Verdict], selection: Selection, taxonomy: Taxonomy, settings: JudgeSettings
) -> dict[str, Any]:
    categories = category_order(taxonomy, verdicts)
    usage = sum((v.usage for v in verdicts), Usage())
    agreements = [v.agreement for v in verdicts if v.agreement is not None]
    totals = Counter(v.category for v in verdicts)
    summary = {
        "judge": {"model": settings.model, **settings.model_dump(exclude={"model"})},
        "taxonomy": taxonomy.names,
        "trajectories": len(verdicts),
        "categories": {c: totals[c] for c in categories},
        "analysis_errors": totals[ANALYSIS_ERROR],
        "flagged": sum(v.flagged for v in verdicts),
        "mean_agreement": sum(agreements) / len(agreements) if agreements else None,
        "category_by_exit_status": _crosstab(verdicts, "exit_status", categories),
        "category_by_repository": _crosstab(verdicts, "repository", categories),
        "cost": usage.model_dump(),
        "resolved_not_judged": selection.resolved,
        "not_evaluated": selection.not_evaluated,
        "malformed": [{"file": file, "reason": reason} for file, reason in selection.malformed],
    }
    return {"summary": summary, "trajectories": [entry(v) for v in verdicts]}


def csv_text(results: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in results["trajectories"]:
        writer.writerow({**row, **row["usage"]})
    return buffer.getvalue()


def write_results(results: dict[str, Any], output_dir: Path) -> tuple[Path, Path]:
    json_path, csv_path = output_dir / RESULTS_JSON, output_dir / RESULTS_CSV
    write_json_atomic(json_path, results)
    write_text_atomic(csv_path, csv_text(results))
    return json_path, csv_path
