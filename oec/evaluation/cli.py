"""`eval_swesmith.sh RUN_DIR [...]`: grade a run's predictions into SWE-smith reports. Bad input exits 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from oec.evaluation.run import DEFAULT_INSTANCES, EVAL_SUBDIR, evaluate_run
from sweagent.utils.log import setup_cli_output


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eval_swesmith.sh",
        description="Grade every prediction of a run directory against the instance's unit tests and write "
        "SWE-smith reports: <eval>/<traj_id>/report.json, test_output.txt, run_instance.log, and <eval>/summary.json. "
        "RUN_DIR/preds.json is rebuilt from the .pred files if missing or stale (unreadable .pred files are skipped "
        "with a warning). The local backend keeps only a patch's changes to the repository's source files (tests, "
        "pytest configuration and new top-level files are reverted) and runs pytest with its own settings. Traj ids "
        "that already have a report are skipped, so an interrupted run resumes where it stopped.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory (<traj_id>/<traj_id>.pred|.traj, preds.json)")
    parser.add_argument("--instances", type=Path, default=DEFAULT_INSTANCES, metavar="FILE",
                        help="SWE-smith instances, JSON or JSONL (default: the demo set config/demo/instances.json)")
    parser.add_argument("--backend", choices=("local", "docker"), default="local",
                        help="local: bubblewrap sandbox, no docker (default); docker: python -m swesmith.harness.eval")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="predictions graded in parallel (default 1)")
    parser.add_argument("--eval_dir", type=Path, metavar="DIR", help=f"where reports go (default: RUN_DIR/{EVAL_SUBDIR})")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="local backend: seconds before a test run is killed (default: the repo profile's)")
    parser.add_argument("--run_id", metavar="ID", help="docker backend: SWE-smith run id (default: oec.<run dir name>)")
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_cli_output()
    args = _parser().parse_args(argv)
    try:
        run = evaluate_run(
            args.run_dir,
            instances_file=args.instances,
            eval_dir=args.eval_dir,
            backend=args.backend,
            workers=args.workers,
            timeout_s=args.timeout,
            run_id=args.run_id,
        )
    except ValueError as exc:
        print(f"eval_swesmith: {exc}", file=sys.stderr)
        return 2
    return 1 if run.summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
