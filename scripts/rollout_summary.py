"""Print one row per rollout of a run directory: what generate_oec.sh shows when it ends.

Switch step drawn and taken, steps by role, well-formed rate by role (answers that became a step, out of the role's
model calls: every other call was a malformed answer), exit status, patch size and wall time (first to last line of
the rollout's log).

    python scripts/rollout_summary.py RUN_DIR
    python scripts/rollout_summary.py --config CONFIG   # the run dir the config names (`output_dir`)
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sweagent.trajectory import iter_trajectory_files, load_trajectory

_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ ")


def _wall_seconds(log: Path) -> float | None:
    if not log.is_file():
        return None
    stamps = [m[1] for line in log.read_text(errors="replace").splitlines() if (m := _LOG_TIME.match(line))]
    if len(stamps) < 2:
        return None
    parse = lambda text: datetime.strptime(text, "%Y-%m-%d %H:%M:%S")  # noqa: E731
    return (parse(stamps[-1]) - parse(stamps[0])).total_seconds()


def _shown(step: int | None) -> str:
    return "-" if step is None else str(step)


def _rate(steps: int, calls: int) -> str:
    return f"{steps}/{calls}" if calls else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, nargs="?")
    parser.add_argument("--config", type=Path, help="without RUN_DIR: the run dir this run-batch config names")
    args = parser.parse_args()
    if args.run_dir is None:
        if args.config is None:
            parser.error("give RUN_DIR or --config")
        from sweagent.run.config_loading import build_config
        from sweagent.run.run_batch import RunBatchConfig

        from sweagent.utils.errors import OECError

        try:
            args.run_dir = build_config(RunBatchConfig, [args.config], []).output_dir
        except OECError as exc:
            parser.exit(2, f"rollout_summary.py: {exc}\n")
    if not args.run_dir.is_dir():
        return  # nothing ran there (the batch stopped before its first rollout)
    table = Table(title=f"rollouts in {args.run_dir}")
    table.add_column("rollout", overflow="fold", min_width=30)
    for column in ("switch drawn", "switched at", "student steps", "expert steps", "student well-formed",
                   "expert well-formed", "exit status", "patch lines", "wall s"):
        table.add_column(column, justify="left" if column == "exit status" else "right", max_width=11)
    for path in iter_trajectory_files(args.run_dir):
        trajectory = load_trajectory(path)
        roles = trajectory.step_roles()
        oec = trajectory.info.oec
        calls = {role: int((getattr(oec, role).stats if oec else {}).get("api_calls", 0)) for role in ("student", "expert")}
        steps = {role: roles.count(role) for role in ("student", "expert")}
        patch = trajectory.info.submission or ""
        changed = sum(1 for line in patch.splitlines() if line[:1] in "+-" and line[:3] not in {"+++", "---"})
        wall = _wall_seconds(path.with_suffix(".info.log"))
        table.add_row(
            path.stem, _shown(oec.switch_step_drawn if oec else None), _shown(oec.switched_at_step if oec else None),
            str(steps["student"]), str(steps["expert"]), _rate(steps["student"], calls["student"]),
            _rate(steps["expert"], calls["expert"]), trajectory.info.exit_status or "-", str(changed),
            f"{wall:.0f}" if wall is not None else "-",
        )
    console = Console()
    if not console.is_terminal:  # a log file: as wide as the table, so no column is cut and ids stay whole
        console = Console(width=Console(width=10_000).measure(table).maximum)
    console.print(table)


if __name__ == "__main__":
    main()
