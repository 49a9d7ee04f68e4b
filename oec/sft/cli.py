"""`convert_to_sft.sh`: options (command line, `--config` files, dotted keys) onto `ConvertOptions`, a summary.

Heavy modules (the pipeline, which reads eval reports with swebench's constants) load after the options parse, so
`--help` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from sweagent.utils.cli import StageParser, run_stage
from sweagent.utils.errors import OECError
from sweagent.utils.log import setup_cli_output

from oec.sft.filters import RepetitionFilter
from oec.sft.options import STYLE_PARSERS, ConvertOptions

PROG = "convert_to_sft.sh"
_S = argparse.SUPPRESS  # only options given on the command line override the --config files and the defaults


def _parser() -> StageParser:
    parser = StageParser(
        prog=PROG, argument_default=_S,
        description="Turn resolved OEC trajectories into SFT data (chat JSONL with per-message weights) that trains "
        "only on the expert's turns. Writes OUT.jsonl (train), OUT.val.jsonl (validation, split by instance), "
        "OUT.summary.json (every dropped trajectory by reason) and, with --tokenizer, OUT.parquet/OUT.val.parquet.",
        epilog="Every option is also a key of a --config YAML file (oec/sft/options.py::ConvertOptions), and any key "
        "can be given dotted, e.g. --repetition.scope all.",
    )
    parser.add_argument("--config", action="append", default=[], metavar="YAML", help="options as YAML, merged in order")
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--runs", "--run_dir", nargs="+", metavar="RUN_DIR", help="run dirs with <traj_id>/<traj_id>.traj")
    io.add_argument("--evals", "--eval_dir", nargs="+", metavar="EVAL_DIR",
                    help="eval dirs with <traj_id>/report.json; as many as --runs pairs them in order, else they are pooled")
    io.add_argument("--output", metavar="OUT.jsonl", help="train rows; the other files are named after it")
    io.add_argument("--instances", nargs="+", metavar="FILE",
                    help="SWE-smith instance files for problem statements (default: each trajectory's replay_config)")
    io.add_argument("--tokenizer", metavar="PATH", help="HF tokenizer folder or .gguf file: also write input_ids/labels as Parquet")
    fmt = parser.add_argument_group("rendering")
    fmt.add_argument("--prompt_config", metavar="YAML",
                     help="the student's prompt: an agent config (its student member's templates, tools and history "
                     "processors, else the agent's) or a fragment with agent.templates and agent.tools (default: the "
                     "config each run recorded; pass one for runs that recorded none or to train another student)")
    fmt.add_argument("--style", choices=sorted(STYLE_PARSERS), help="answer format: xml, tool (native tool calls) or ticks (default: the student's)")
    fmt.add_argument("--working_dir", help="repository path in the prompt (default: the run's env.working_dir, else /testbed)")
    fmt.add_argument("--observations", choices=["full", "as_seen"],
                     help="full (default): every observation as recorded; as_seen: after the student's history "
                     "processors (e.g. last_n_observations), as its query at the last turn showed them")
    fmt.add_argument("--default_role", choices=["expert", "student"],
                     help="role of plain SWE-agent trajectories without model_role (default: expert)")
    fmt.add_argument("--mask_student", action=argparse.BooleanOptionalAction,
                     help="weight 0 on student turns (default); --no-mask_student for the imitation / rejection-sampling baselines")
    keep = parser.add_argument_group("filtering and splitting")
    keep.add_argument("--resolved_only", action=argparse.BooleanOptionalAction, help="keep only resolved trajectories (default)")
    defaults = RepetitionFilter()
    keep.add_argument("--max_repeated_actions", dest="repetition.max_repeated_actions", type=int, metavar="N",
                      help=f"drop when one action runs N times in a row; 0: off (default: {defaults.max_repeated_actions})")
    keep.add_argument("--observation_cycle_repeats", dest="repetition.observation_cycle_repeats", type=int, metavar="K",
                      help=f"drop when a cycle of observations repeats K times in a row; 0: off (default: {defaults.observation_cycle_repeats})")
    keep.add_argument("--max_cycle_length", dest="repetition.max_cycle_length", type=int, metavar="P",
                      help=f"longest observation cycle looked for (default: {defaults.max_cycle_length})")
    keep.add_argument("--repetition_scope", dest="repetition.scope", choices=["trained", "all"],
                      help=f"check the trained turns only, or all turns (default: {defaults.scope})")
    keep.add_argument("--max_per_instance", type=int, metavar="N", help="at most N rows per instance (seeded sample)")
    keep.add_argument("--val_fraction", type=float, help="share of instances in validation (default: 0.05)")
    keep.add_argument("--seed", type=int, help="seed for sampling and the split (default: 0)")
    parser.add_argument("--quiet", action="store_true", default=False, help="no progress bar and no summary table")
    return parser


def options_from_cli(argv: list[str] | None) -> tuple[ConvertOptions, bool]:
    """(options, quiet) from the command line: `--config` files, then the options given, then dotted keys."""
    from sweagent.run.config_loading import build_config, parse_cli, resolve_config_path

    args, extra = _parser().parse_known_args(argv)
    given = {key: value for key, value in vars(args).items() if key not in ("config", "quiet")}
    _, dotted = parse_cli(extra)
    options = build_config(ConvertOptions, [resolve_config_path(path) for path in args.config], [*given.items(), *dotted])
    if options.resolved_only and not options.evals:
        raise OECError("--evals is required with --resolved_only (the default); pass --no-resolved_only to convert "
                       "trajectories without reports")
    return options, args.quiet


def _print_summary(summary: dict[str, Any], console: Console) -> None:
    table = Table(title="convert_to_sft", show_header=False)
    table.add_row("trajectories found", str(summary["trajectories"]))
    table.add_row("rows (train / validation)", f"{summary['rows']['train']} / {summary['rows']['validation']}")
    table.add_row("instances (train / validation)", f"{summary['instances']['train']} / {summary['instances']['validation']}")
    table.add_row("assistant turns (trained / masked)", f"{summary['assistant_turns']['trained']} / {summary['assistant_turns']['masked']}")
    for reason, count in summary["dropped"].items():
        table.add_row(f"dropped: {reason}", str(count))
    for kind, refs in summary["warnings"].items():
        table.add_row(f"warning: {kind}", str(len(refs)))
    if summary["orphan_reports"]:
        table.add_row("reports without trajectory", str(len(summary["orphan_reports"])))
    console.print(table)
    console.print(f"summary: {summary['outputs']['summary']}", markup=False)


def _convert(argv: list[str] | None) -> int:
    options, quiet = options_from_cli(argv)
    from oec.sft.pipeline import convert

    console = Console(stderr=True)
    summary = convert(options, show_progress=not quiet)
    if not quiet:
        _print_summary(summary, console)
    oracle = summary["warnings"].get("oracle_turns", [])
    if oracle:
        console.print(f"[yellow]warning: {len(oracle)} trajectories have turns of an oracle expert (a model name contains "
                      "'oracle'); an oracle knows the fix, so keep them out of data for a model you will evaluate[/yellow]")
    return 0


def main(argv: list[str] | None = None) -> int:
    setup_cli_output()
    return run_stage(PROG, lambda: _convert(argv))


if __name__ == "__main__":
    sys.exit(main())
