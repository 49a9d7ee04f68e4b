"""Command line: `python -m covariate_shift_analysis [--config FILE] [--group NAME=DIR[,DIR]]... [--section.key VALUE]...`"""

from __future__ import annotations

import logging
import sys
from argparse import RawDescriptionHelpFormatter

from sweagent.utils.cli import StageParser, run_stage
from sweagent.utils.log import setup_cli_output

PROG = "analyze_covariate_shift.sh"

EPILOG = """\
Any setting of the YAML file can also be given as a dotted option, e.g.
  --bootstrap.replicates 200  --metrics.pca_dim 32  --embedding.device cuda  --default_role student
  --figures paper|all|none   (paper, the default: Fréchet and KL in the paper's three views, MMD², trajectory map)
Example:
  python -m covariate_shift_analysis --group expert=runs/expert --group student=runs/student,runs/student2 \\
      --reference expert --output_dir results/shift
Outputs: <output_dir>/README.md (what each file is), {frechet,kl,mmd}.csv, trajectory_level.csv, turn_counts.csv,
  manifest.json, plots/<metric>_<view>.png|pdf
"""


def _parser() -> StageParser:
    parser = StageParser(
        prog=PROG,
        description="Embed trajectories turn by turn and measure how far each group's states drift from a reference's.",
        epilog=EPILOG,
        formatter_class=RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", action="append", default=[], help="YAML file(s) with groups and settings, merged in order")
    parser.add_argument("--group", action="append", default=[], metavar="NAME=RUN_DIR[,RUN_DIR]", help="add a group (repeatable)")
    parser.add_argument("--reference", help="the group the others are compared against")
    parser.add_argument("--output_dir", "--output-dir", help="where CSVs, plots and manifest.json go")
    parser.add_argument("--no_progress", "--no-progress", action="store_true", help="hide progress bars")
    return parser


def _analyze(argv: list[str]) -> int:
    args, extra = _parser().parse_known_args(argv)
    from covariate_shift_analysis.analysis import run_analysis
    from covariate_shift_analysis.config import load_config, parse_group_flag
    from sweagent.run.config_loading import parse_cli, resolve_config_path

    _, overrides = parse_cli(extra)
    overrides += [parse_group_flag(flag) for flag in args.group]
    overrides += [(key, value) for key, value in (("reference", args.reference), ("output_dir", args.output_dir)) if value]
    config = load_config([resolve_config_path(path) for path in args.config], overrides)
    result = run_analysis(config, progress=not args.no_progress, command=["python", "-m", "covariate_shift_analysis", *argv])
    for row in result.trajectories.itertuples():
        print(f"trajectory-level {row.metric:>8} {row.group}: bootstrap mean {row.mean:.4g} (95% band {row.ci_low:.4g}..{row.ci_high:.4g})")
    print(f"wrote {len(result.files)} files to {config.output_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    setup_cli_output()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    return run_stage(PROG, lambda: _analyze(argv))
