"""The run summary `<eval>/summary.json`: SWE-smith's run-level counts, broken down by exit status, repo and rollout.

It is rebuilt from the reports on disk every time, so it covers traj ids graded by earlier (resumed) runs as well.
The first five keys are those of SWE-smith's run report (`resolved`, `unresolved`, `total`, `ids_resolved`,
`ids_unresolved`); `total` counts every prediction, as SWE-smith does, skipped and failed ones included.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from oec.evaluation.plan import EvalPlan
from oec.evaluation.reports import REPORT_FILE, read_report
from sweagent.predictions import instance_id_of
from sweagent.trajectory import TrajectoryError, find_trajectory_file, load_trajectory, split_traj_id
from sweagent.utils.files import write_json_atomic

SUMMARY_FILE = "summary.json"
BREAKDOWNS = {"by_exit_status": "exit status", "by_repo": "repository", "by_rollout": "rollout"}


def exit_status_of(run_dir: Path, traj_id: str) -> str:
    """The agent's exit status from the trajectory (`no trajectory` for runs that only left predictions)."""
    path = find_trajectory_file(run_dir, traj_id)
    if path is None:
        return "no trajectory"
    try:
        return load_trajectory(path).info.exit_status or "unknown"
    except TrajectoryError:
        return "unreadable trajectory"


def build_summary(plan: EvalPlan, run_dir: Path, eval_dir: Path, errors: dict[str, str]) -> dict[str, Any]:
    """Counts over every prediction of the run, from the reports in `eval_dir`."""
    ids_resolved, ids_unresolved = [], []
    outcomes: Counter[str] = Counter()
    groups: dict[str, dict[str, dict[str, int]]] = {key: defaultdict(lambda: {"resolved": 0, "total": 0}) for key in BREAKDOWNS}
    missing = {}
    for traj_id, prediction in sorted(plan.predictions.items()):
        instance = plan.instances.get(instance_id_of(prediction))
        rollout = split_traj_id(traj_id)[1]
        keys = {
            "by_exit_status": exit_status_of(run_dir, traj_id),
            "by_repo": instance.repo if instance else "(unknown instance)",
            "by_rollout": "single" if rollout is None else f"r{rollout}",
        }
        report_file = eval_dir / traj_id / REPORT_FILE
        resolved = False
        if traj_id in plan.skipped:
            outcomes["skipped"] += 1
        elif report_file.is_file():
            report = read_report(report_file)
            resolved = report.resolved
            outcomes[report.outcome] += 1
            (ids_resolved if resolved else ids_unresolved).append(traj_id)
        else:
            outcomes["error"] += 1
            missing[traj_id] = errors.get(traj_id, "no report was written")
        for breakdown, key in keys.items():
            groups[breakdown][key]["total"] += 1
            groups[breakdown][key]["resolved"] += resolved
    return {
        "resolved": len(ids_resolved),
        "unresolved": len(ids_unresolved),
        "total": len(plan.predictions),
        "ids_resolved": ids_resolved,
        "ids_unresolved": ids_unresolved,
        "outcomes": dict(sorted(outcomes.items())),
        **{breakdown: dict(sorted(tallies.items())) for breakdown, tallies in groups.items()},
        "skipped": plan.skipped,
        "errors": missing,
    }


def write_summary(eval_dir: Path, summary: dict[str, Any]) -> Path:
    path = eval_dir / SUMMARY_FILE
    write_json_atomic(path, summary)
    return path


def _rate(resolved: int, total: int) -> str:
    return f"{100 * resolved / total:.1f}%" if total else "-"


def print_summary(summary: dict[str, Any], console: Console) -> None:
    """The summary as one table: the overall rate, then each breakdown; then skipped and failed traj ids."""
    table = Table(title="Evaluation summary")
    for column, justify in (("group", "left"), ("value", "left"), ("resolved", "right"), ("total", "right"), ("rate", "right")):
        table.add_column(column, justify=justify)
    table.add_row("all", "", str(summary["resolved"]), str(summary["total"]), _rate(summary["resolved"], summary["total"]))
    for breakdown, label in BREAKDOWNS.items():
        table.add_section()
        for value, tally in summary[breakdown].items():
            table.add_row(label, value, str(tally["resolved"]), str(tally["total"]), _rate(tally["resolved"], tally["total"]))
    console.print(table)
    console.print("outcomes: " + ", ".join(f"{name} {count}" for name, count in summary["outcomes"].items()))
    for title, entries in (("skipped", summary["skipped"]), ("not graded (retried on the next run)", summary["errors"])):
        for traj_id, reason in entries.items():
            console.print(f"[yellow]{title}[/yellow] {traj_id}: {reason}", highlight=False)
