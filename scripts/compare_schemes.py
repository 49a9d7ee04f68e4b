"""Compare generation schemes over run dirs: one table of rollouts, resolved, and expert spend per resolved rollout.

    python scripts/compare_schemes.py trajectories/oec trajectories/window trajectories/mixture [--evals E1 E2 E3]

Each run dir is graded by `<run>/eval` unless `--evals` names the eval dirs in the same order; a rollout without a
report counts as unresolved. Spend is per resolved rollout, so schemes compare at equal expert budget. A branched run
(`run-batch --branches N`) shows its student prefixes beside its rollouts; a prefix's student calls count once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from oec.evaluation.errors import EvaluationError
from oec.evaluation.reports import REPORT_FILE, read_report
from sweagent.agent.switching.accounting import usage_by_role
from sweagent.trajectory import TrajectoryError, iter_trajectory_files, load_trajectory_outline

COLUMNS = ["scheme", "switch_type", "rollouts", "student prefixes", "resolved", "expert step share", "hand-overs/rollout",
           "expert calls/resolved", "expert tokens/resolved", "expert $/resolved", "student calls/resolved"]


def _resolved(eval_dir: Path, traj_id: str) -> bool:
    report = eval_dir / traj_id / REPORT_FILE
    return report.is_file() and read_report(report).resolved


def scheme_row(run_dir: Path, eval_dir: Path) -> list[str]:
    paths = list(iter_trajectory_files(run_dir))
    trajectories = [load_trajectory_outline(path) for path in paths]
    resolved = sum(_resolved(eval_dir, path.parent.name) for path in paths)
    usage = usage_by_role(trajectories)
    expert, student = usage["expert"], usage["student"]
    steps = expert.steps + student.steps
    types = sorted({t.info.oec.switch_type if t.info.oec else "single model" for t in trajectories})
    handovers = sum(len(t.info.oec.handovers) for t in trajectories if t.info.oec)
    prefixes = {getattr(t.info.oec, "prefix_id", None) or path.parent.name if t.info.oec else path.parent.name
                for t, path in zip(trajectories, paths)}
    per = (lambda value: f"{value / resolved:.1f}") if resolved else (lambda value: "-")
    return [run_dir.name, ",".join(types), str(len(trajectories)), str(len(prefixes)), str(resolved),
            f"{expert.steps / steps:.2f}" if steps else "-", f"{handovers / len(trajectories):.1f}" if trajectories else "-",
            per(expert.api_calls), per(expert.tokens), f"{expert.instance_cost / resolved:.4f}" if resolved else "-",
            per(student.api_calls)]


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories, one per scheme")
    parser.add_argument("--evals", nargs="+", type=Path, help="eval directories in the order of the runs (default: <run>/eval)")
    args = parser.parse_args(argv)
    evals = args.evals or [run / "eval" for run in args.runs]
    if len(evals) != len(args.runs):
        print(f"compare_schemes: --evals names {len(evals)} dirs for {len(args.runs)} runs", file=sys.stderr)
        return 2
    try:
        rows = [scheme_row(run, eval_dir) for run, eval_dir in zip(args.runs, evals)]
    except (TrajectoryError, EvaluationError) as exc:
        print(f"compare_schemes: {exc}", file=sys.stderr)
        return 2
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
