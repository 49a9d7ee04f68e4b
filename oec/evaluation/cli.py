"""`eval_swesmith.sh RUN_DIR [...]`: grade a run's predictions into SWE-smith reports. Bad input exits 2.

Options are `EvalOptions` keys, given as options, in `--config` YAML files or as dotted keys; the harness (and
swebench) loads only after they parse, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import sys

from sweagent.utils.cli import StageParser, run_stage
from sweagent.utils.log import setup_cli_output

from oec.evaluation.options import EVAL_SUBDIR, EvalOptions

PROG = "eval_swesmith.sh"


def _parser() -> StageParser:
    parser = StageParser(
        prog=PROG, argument_default=argparse.SUPPRESS,
        description="Grade every prediction of a run directory against the instance's unit tests and write "
        "SWE-smith reports: <eval>/<traj_id>/report.json, test_output.txt, run_instance.log, and <eval>/summary.json. "
        "RUN_DIR/preds.json is rebuilt from the .pred files if missing or stale (unreadable .pred files are skipped "
        "with a warning). The local backend keeps only a patch's changes to the repository's source files (tests, "
        "pytest configuration and new top-level files are reverted) and runs pytest with its own settings. Traj ids "
        "that already have a report are skipped, so an interrupted run resumes where it stopped.",
        epilog="Every option is also a key of a --config YAML file (oec/evaluation/options.py::EvalOptions).",
    )
    parser.add_argument("positional_run_dir", nargs="?", metavar="RUN_DIR", help="the run directory (or --run_dir)")
    parser.add_argument("--config", action="append", default=[], metavar="YAML", help="options as YAML, merged in order")
    parser.add_argument("--run_dir", metavar="DIR", help="run directory (<traj_id>/<traj_id>.pred|.traj, preds.json)")
    parser.add_argument("--instances", metavar="FILE",
                        help="SWE-smith instances, JSON or JSONL (default: the demo set config/demo/instances.json)")
    parser.add_argument("--backend", choices=("local", "docker"),
                        help="local: bubblewrap sandbox, no docker (default); docker: python -m swesmith.harness.eval")
    parser.add_argument("--num_workers", "--workers", type=int, metavar="N", help="predictions graded in parallel (default 1)")
    parser.add_argument("--eval_dir", metavar="DIR", help=f"where reports go (default: RUN_DIR/{EVAL_SUBDIR})")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="local backend: seconds before a test run is killed (default: the repo profile's)")
    parser.add_argument("--run_id", metavar="ID", help="docker backend: SWE-smith run id (default: oec.<run dir name>)")
    return parser


def options_from_cli(argv: list[str] | None) -> EvalOptions:
    from sweagent.run.config_loading import build_config, parse_cli, resolve_config_path

    args, extra = _parser().parse_known_args(argv)
    given = {key: value for key, value in vars(args).items() if key not in ("config", "positional_run_dir")}
    if getattr(args, "positional_run_dir", None):
        given["run_dir"] = args.positional_run_dir
    _, dotted = parse_cli(extra)
    return build_config(EvalOptions, [resolve_config_path(path) for path in args.config], [*given.items(), *dotted])


def _evaluate(argv: list[str] | None) -> int:
    options = options_from_cli(argv)
    from oec.evaluation.run import evaluate_run

    run = evaluate_run(options.run_dir, instances_file=options.instances, eval_dir=options.eval_dir,
                       backend=options.backend, workers=options.num_workers, timeout_s=options.timeout, run_id=options.run_id)
    return 1 if run.summary["errors"] else 0


def main(argv: list[str] | None = None) -> int:
    setup_cli_output()
    return run_stage(PROG, lambda: _evaluate(argv))


if __name__ == "__main__":
    sys.exit(main())
