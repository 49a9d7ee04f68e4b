"""The results of a run: a JSON with a summary and one entry per trajectory, the same entries as CSV, and a README."""

from __future__ import annotations

import csv
import io
import shlex
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from failure_categorization.charts import CHART_DESCRIPTIONS
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


README = "README.md"


def _judge_lines(judge: dict[str, Any]) -> list[str]:
    limits = judge["limits"]
    if judge["structured_output"]:
        output = "structured output (a JSON schema whose category is an enum of the taxonomy)"
    else:
        output = "text answers (`category: <name>` on the last line)"
    return [
        f"- judge: `{judge['model']}`, {judge['samples']} answer(s) per trajectory (majority vote), temperature "
        f"{judge['temperature']}, at most {judge['max_tokens']} answer tokens, {output}",
        f"- the judge saw: the task (≤ {limits['max_problem_chars']} characters), the tools (≤ {limits['max_tools_chars']}), "
        f"the exit status and the last {limits['last_steps']} steps (actions ≤ {limits['max_action_chars']}, "
        f"observations ≤ {limits['max_observation_chars']} characters each, head and tail kept)",
    ]


def write_readme(
    results: dict[str, Any], output_dir: Path, charts: list[Path], command: list[str], inputs: dict[str, str]
) -> Path:
    """`<output_dir>/README.md`: what was judged, by whom, with what result, and what each file and chart is."""
    summary = results["summary"]
    cost = summary["cost"]
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Failure categorization",
        "",
        f"Made {created} by `failure_categorization` (see its README in the OEC repository): an LLM judge put each "
        f"failed trajectory in one category of the taxonomy.",
        "",
        "## What was judged",
        "",
        *[f"- {name}: `{value}`" for name, value in inputs.items()],
        f"- {summary['trajectories']} failed trajectories judged; left out: {summary['resolved_not_judged']} resolved, "
        f"{len(summary['not_evaluated'])} that submitted a patch but have no eval report, {len(summary['malformed'])} "
        "unreadable",
        *_judge_lines(summary["judge"]),
        f"- judge calls {cost['calls']}, tokens {cost['prompt_tokens']} in / {cost['completion_tokens']} out, "
        f"cost ${cost['cost']:.4f}",
        "",
        "## Categories",
        "",
        "| category | trajectories |",
        "| --- | --- |",
        *[f"| {name} | {count} |" for name, count in summary["categories"].items()],
        "",
        f"{summary['flagged']} answers named a category outside the taxonomy (counted under the fallback category, "
        f"`flagged` in the CSV); {summary['analysis_errors']} trajectories could not be judged (`{ANALYSIS_ERROR}`: "
        "rerun the same command to retry only those).",
        "",
        "## Files",
        "",
        f"- `{RESULTS_JSON}`: the summary above (by exit status, by repository, cost) and one entry per trajectory.",
        f"- `{RESULTS_CSV}`: one row per trajectory: category, the judge's description, agreement of the votes, tokens, cost.",
        "- `verdicts/<traj_id>.json`: every answer of the judge for one trajectory; a rerun with the same judge reuses them.",
    ]
    stems = dict.fromkeys(path.stem for path in charts)
    lines += [f"- `{stem}.png` / `.pdf`: {CHART_DESCRIPTIONS[stem]}." for stem in stems]
    lines += ["", "## How this was made", "", "```bash", shlex.join(command), "```", ""]
    path = output_dir / README
    write_text_atomic(path, "\n".join(lines))
    return path
