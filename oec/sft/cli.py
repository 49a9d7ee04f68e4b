"""`convert_to_sft.sh`: command-line options onto `ConvertOptions`, a printed summary, exit 2 on bad input."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from sweagent.agent.templates import TemplateError
from sweagent.instance import InstanceError
from sweagent.tools.bundles import BundleError
from sweagent.trajectory import TrajectoryError

from oec.sft.errors import SFTError
from oec.sft.filters import RepetitionFilter
from oec.sft.pipeline import ConvertOptions, convert
from oec.sft.prompt import STYLE_PARSERS
from sweagent.utils.log import setup_cli_output

_BAD_INPUT = (SFTError, TrajectoryError, InstanceError, BundleError, TemplateError)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convert_to_sft.sh",
        description="Turn resolved OEC trajectories into SFT data (chat JSONL with per-message weights) that trains "
        "only on the expert's turns. Writes OUT.jsonl (train), OUT.val.jsonl (validation, split by instance), "
        "OUT.summary.json (every dropped trajectory by reason) and, with --tokenizer, OUT.parquet/OUT.val.parquet.",
    )
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--runs", nargs="+", required=True, metavar="RUN_DIR", help="run dirs with <traj_id>/<traj_id>.traj")
    io.add_argument("--evals", nargs="+", default=[], metavar="EVAL_DIR",
                    help="eval dirs with <traj_id>/report.json; as many as --runs pairs them in order, else they are pooled")
    io.add_argument("--output", required=True, metavar="OUT.jsonl", help="train rows; the other files are named after it")
    io.add_argument("--instances", nargs="+", default=[], metavar="FILE",
                    help="SWE-smith instance files for problem statements (default: each trajectory's replay_config)")
    io.add_argument("--tokenizer", metavar="PATH", help="HF tokenizer folder or .gguf file: also write input_ids/labels as Parquet")
    fmt = parser.add_argument_group("rendering")
    fmt.add_argument("--prompt_config", metavar="YAML",
                     help="the student's prompt: an agent config (its student member's templates, tools and history "
                     "processors, else the agent's) or a fragment with agent.templates and agent.tools (default: the "
                     "config each run recorded; pass one for runs that recorded none or to train another student)")
    fmt.add_argument("--style", choices=sorted(STYLE_PARSERS), help="answer format: xml, tool (native tool calls) or ticks (default: the student's)")
    fmt.add_argument("--working_dir", help="repository path in the prompt (default: the run's env.working_dir, else /testbed)")
    fmt.add_argument("--observations", choices=["full", "as_seen"], default="full",
                     help="full: every observation as recorded; as_seen: after the student's history processors "
                     "(e.g. last_n_observations), as its query at the last turn showed them (default: %(default)s)")
    fmt.add_argument("--default_role", choices=["expert", "student"], default="expert",
                     help="role of plain SWE-agent trajectories without model_role (default: %(default)s)")
    fmt.add_argument("--mask_student", action=argparse.BooleanOptionalAction, default=True,
                     help="weight 0 on student turns; --no-mask_student for the imitation / rejection-sampling baselines")
    keep = parser.add_argument_group("filtering and splitting")
    keep.add_argument("--resolved_only", action=argparse.BooleanOptionalAction, default=True, help="keep only resolved trajectories")
    defaults = RepetitionFilter()
    keep.add_argument("--max_repeated_actions", type=int, default=defaults.max_repeated_actions, metavar="N",
                      help="drop when one action runs N times in a row; 0: off (default: %(default)s)")
    keep.add_argument("--observation_cycle_repeats", type=int, default=defaults.observation_cycle_repeats, metavar="K",
                      help="drop when a cycle of observations repeats K times in a row; 0: off (default: %(default)s)")
    keep.add_argument("--max_cycle_length", type=int, default=defaults.max_cycle_length, metavar="P",
                      help="longest observation cycle looked for (default: %(default)s)")
    keep.add_argument("--repetition_scope", choices=["trained", "all"], default=defaults.scope,
                      help="check the trained turns only, or all turns (default: %(default)s)")
    keep.add_argument("--max_per_instance", type=int, metavar="N", help="at most N rows per instance (seeded sample)")
    keep.add_argument("--val_fraction", type=float, default=0.05, help="share of instances in validation (default: %(default)s)")
    keep.add_argument("--seed", type=int, default=0, help="seed for sampling and the split (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary table")
    return parser


def _options(args: argparse.Namespace) -> ConvertOptions:
    repetition = RepetitionFilter(max_repeated_actions=args.max_repeated_actions, observation_cycle_repeats=args.observation_cycle_repeats,
                                  max_cycle_length=args.max_cycle_length, scope=args.repetition_scope)
    return ConvertOptions(
        runs=args.runs, evals=args.evals, output=args.output, instances=args.instances, prompt_config=args.prompt_config,
        style=args.style, default_role=args.default_role, resolved_only=args.resolved_only, mask_student=args.mask_student,
        repetition=repetition, max_per_instance=args.max_per_instance, val_fraction=args.val_fraction, seed=args.seed,
        working_dir=args.working_dir, observations=args.observations, tokenizer=args.tokenizer,
    )


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


def _fail(message: str) -> int:
    print(f"convert_to_sft: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    setup_cli_output()
    args = _parser().parse_args(argv)
    console = Console(stderr=True)
    if args.resolved_only and not args.evals:
        return _fail("--evals is required with --resolved_only (the default); pass --no-resolved_only to convert "
                     "trajectories without reports")
    try:
        options = _options(args)
        summary = convert(options, show_progress=not args.quiet)
    except ValidationError as exc:
        first = exc.errors()[0]
        return _fail(f"option --{first['loc'][-1]}: {first['msg']}")
    except _BAD_INPUT as exc:
        return _fail(str(exc))
    if not args.quiet:
        _print_summary(summary, console)
    oracle = summary["warnings"].get("oracle_turns", [])
    if oracle:
        console.print(f"[yellow]warning: {len(oracle)} trajectories have turns of an oracle expert (a model name contains "
                      "'oracle'); an oracle knows the fix, so keep them out of data for a model you will evaluate[/yellow]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
