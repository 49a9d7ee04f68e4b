"""`sweagent inspect PATH...`: browse rollouts in the terminal, print their list, or write the static HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sweagent.inspector.extras import load_extras
from sweagent.inspector.html_report import write_report
from sweagent.inspector.index import InspectError, RunIndex, build_index
from sweagent.inspector.terminal import InspectorApp


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sweagent inspect",
        description="See rollouts: who acted in each step (student/expert), where control changed hands, the eval "
        "result and, with --sft, which turns are trained. Opens a terminal app unless --html or --list is given.")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="a .traj/.traj.json file, a run dir, or a folder of run dirs (e.g. a pipeline output)")
    parser.add_argument("--eval_dir", action="append", type=Path, default=[], metavar="E",
                        help="eval dir of each run dir, in order (default: <run>/eval when it exists)")
    parser.add_argument("--html", type=Path, metavar="OUT_DIR", help="write the static HTML report to OUT_DIR")
    parser.add_argument("--sft", action="append", type=Path, default=[], metavar="FILE",
                        help="SFT JSONL file(s) whose rows mark each assistant turn trained (weight 1) or masked (0)")
    parser.add_argument("--analysis", nargs="+", action="extend", type=Path, default=[], metavar="DIR",
                        help="covariate-shift or failure-judge output dirs: plots and tables linked in, verdicts shown")
    parser.add_argument("--default_role", choices=["expert", "student"], default="expert",
                        help="role of the steps of trajectories that record none (plain SWE-agent, mini-swe-agent)")
    parser.add_argument("--list", action="store_true", help="print the rollout list and exit (no terminal app)")
    return parser


def print_list(index: RunIndex, console: Console) -> None:
    table = Table("run", "traj id", "models", "exit status", "resolved", "switch drawn/taken", "steps", "cost")
    for rollout in index.rollouts:
        details = [rollout.exit_status or "-", rollout.resolved_label, rollout.switch_label, rollout.steps_label,
                   rollout.cost_label] if not rollout.error else [rollout.error, "", "", "", ""]
        table.add_row(index.label(rollout.run_dir), rollout.traj_id, rollout.kind, *details)
    console.print(table, markup=False)
    console.print(f"{len(index.rollouts)} rollouts, indexed in {index.seconds:.2f} s", markup=False)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        for folder in args.analysis:
            if not folder.is_dir():
                raise InspectError(f"{folder}: analysis directory does not exist (--analysis)")
        for file in args.sft:
            if not file.is_file():
                raise InspectError(f"{file}: no such SFT file (--sft)")
        index = build_index(args.paths, args.eval_dir, args.default_role)
        extras = load_extras(args.sft, args.analysis)
        for problem in extras.problems:
            print(f"sweagent inspect: warning: {problem}", file=sys.stderr)
        if args.html is not None:
            print(write_report(args.html, index, extras, args.default_role))
            return 0
    except InspectError as exc:
        print(f"sweagent inspect: {exc}", file=sys.stderr)
        return 2
    if args.list or not sys.stdout.isatty():
        print_list(index, Console(width=None if sys.stdout.isatty() else 200))
        return 0
    InspectorApp(index, extras, args.default_role).run()
    return 0
