"""Local evaluation harness: its own overhead per prediction (wall time minus the test command) and its throughput
with 1 and 2 workers, side by side, on gold predictions (the reverse of each bug patch) for the demo instances.

Usage: python scripts/bench/eval_overhead.py [--per_repo 3] [--instances config/demo/instances.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from oec.evaluation.run import DEFAULT_INSTANCES, evaluate_run
from sweagent.environment.task_repos.profiles import get_profile
from sweagent.environment.task_repos.source_cache import pristine_tree
from sweagent.environment.task_repos.test_venv import sandbox_env
from sweagent.environment.task_repos.workspace import apply_patch, build_workspace, git
from sweagent.instance import TaskInstance, load_instances
from sweagent.predictions import Prediction, write_prediction


def gold_patch(instance: TaskInstance, scratch: Path) -> str:
    """The fix as a model would submit it: the bug state with the bug patch reversed, diffed by git."""
    workspace = build_workspace(instance, scratch / instance.instance_id, hide_fail_to_pass_tests=False)
    apply_patch(workspace.path, instance.patch, reverse=True)
    return git(workspace.path, "diff", "HEAD").stdout


def write_gold_run(instances: list[TaskInstance], run_dir: Path, scratch: Path) -> None:
    for instance in instances:
        prediction = Prediction(instance_id=instance.instance_id, model_name_or_path="gold", model_patch=gold_patch(instance, scratch))
        write_prediction(run_dir / instance.instance_id / f"{instance.instance_id}.pred", prediction)


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per_repo", type=int, default=3, help="instances per repository (default 3)")
    parser.add_argument("--instances", type=Path, default=DEFAULT_INSTANCES, help="SWE-smith instances file")
    args = parser.parse_args(argv)
    per_repo: dict[str, list[TaskInstance]] = {}
    for instance in load_instances(args.instances):
        per_repo.setdefault(instance.repo, []).append(instance)
    chosen = [instance for group in per_repo.values() for instance in group[: args.per_repo]]
    console = Console()
    columns: dict[int, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="oec-bench-eval-") as tmp:
        root = Path(tmp)
        for repo in per_repo:  # caches (pristine tree, test venv) are built once and are not what this measures
            profile = get_profile(repo)
            pristine_tree(profile.source)
            sandbox_env(profile)
        write_gold_run(chosen, root / "run", root / "scratch")
        for workers in (1, 2):
            started = time.monotonic()
            run = evaluate_run(root / "run", instances_file=args.instances, eval_dir=root / f"eval{workers}",
                               workers=workers, console=Console(quiet=True))
            wall = time.monotonic() - started
            overhead = [result.duration_s - result.tests_duration_s for result in run.graded]
            tests = [result.tests_duration_s for result in run.graded]
            columns[workers] = {
                "predictions graded": f"{len(run.graded)} ({run.summary['resolved']} resolved)",
                "wall time": f"{wall:.1f} s",
                "throughput": f"{60 * len(run.graded) / wall:.1f} predictions/min",
                "test command per prediction (median)": f"{statistics.median(tests):.2f} s",
                "harness overhead per prediction (median)": f"{statistics.median(overhead):.2f} s",
                "harness overhead per prediction (p90)": f"{_p90(overhead):.2f} s",
                "overhead share of graded time": f"{100 * sum(overhead) / sum(r.duration_s for r in run.graded):.0f}%",
            }
    table = Table(title=f"local eval harness, {len(chosen)} gold predictions ({', '.join(per_repo)})")
    table.add_column("measure")
    for workers in columns:
        table.add_column(f"{workers} worker{'s' if workers > 1 else ''}", justify="right")
    for measure in columns[1]:
        table.add_row(measure, *(columns[workers][measure] for workers in columns))
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
