"""Do the two evaluation backends agree? Every instance graded with its gold patch (the reverse of the bug), an
empty patch and a wrong one (a comment added to the buggy file: it applies and fixes nothing), by the local sandbox
harness and by SWE-smith's harness in docker; prints the agreement table and the disagreements.

Needs the docker images (`scripts/docker_images.sh build`). Usage:
    python scripts/bench/backend_agreement.py [--instances config/demo/instances.json] [--limit N] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from eval_overhead import gold_patch
from oec.evaluation.run import DEFAULT_INSTANCES, evaluate_run
from sweagent.environment.task_repos.workspace import build_workspace, git
from sweagent.instance import TaskInstance, load_instances
from sweagent.predictions import Prediction, write_prediction
from sweagent.trajectory import split_traj_id, traj_id_for

KINDS = ("gold", "empty", "wrong")
"""Rollout k of each instance in the run holds prediction KINDS[k]."""


def wrong_patch(instance: TaskInstance, scratch: Path) -> str:
    """A change that applies to the bug state and fixes nothing: a comment at the end of the first buggy file."""
    workspace = build_workspace(instance, scratch / f"{instance.instance_id}.wrong", hide_fail_to_pass_tests=False)
    buggy_file = workspace.path / instance.patch.split("\n", 1)[0].removeprefix("--- a/")
    buggy_file.write_text(buggy_file.read_text(encoding="utf-8") + "\n# looked at this file; the bug stays\n", encoding="utf-8")
    return git(workspace.path, "diff", "HEAD").stdout


def write_run(instances: list[TaskInstance], run_dir: Path, scratch: Path) -> None:
    for instance in instances:
        patches = {"gold": gold_patch(instance, scratch), "empty": "", "wrong": wrong_patch(instance, scratch)}
        for rollout, kind in enumerate(KINDS):
            traj_id = traj_id_for(instance.instance_id, rollout)
            prediction = Prediction(instance_id=instance.instance_id, model_name_or_path=kind, model_patch=patches[kind], traj_id=traj_id)
            write_prediction(run_dir / traj_id / f"{traj_id}.pred", prediction)


def resolved(eval_dir: Path, traj_id: str) -> bool | None:
    """The report's verdict, or None when the backend wrote no report."""
    report = eval_dir / traj_id / "report.json"
    return json.loads(report.read_text(encoding="utf-8")).get("resolved", False) if report.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=Path, default=DEFAULT_INSTANCES, help="SWE-smith instances file")
    parser.add_argument("--limit", type=int, help="only the first N instances")
    parser.add_argument("--workers", type=int, default=2, help="predictions graded at once by each backend (default 2)")
    args = parser.parse_args(argv)
    instances = load_instances(args.instances)[: args.limit]
    console = Console()
    with tempfile.TemporaryDirectory(prefix="oec-bench-agreement-") as tmp:
        root = Path(tmp)
        write_run(instances, root / "run", root / "scratch")
        seconds, verdicts = {}, {}
        for backend in ("local", "docker"):
            started = time.monotonic()
            evaluate_run(root / "run", instances_file=args.instances, eval_dir=root / backend, backend=backend,
                         workers=args.workers, console=Console(quiet=True))
            seconds[backend] = time.monotonic() - started
            verdicts[backend] = {path.name: resolved(root / backend, path.name) for path in (root / "run").iterdir() if path.is_dir()}
    table = Table(title=f"{len(instances)} instances × {{{', '.join(KINDS)}}}: resolved by each backend")
    for column in ("kind", "local resolved", "docker resolved", "agree"):
        table.add_column(column, justify="right")
    disagreements = []
    for rollout, kind in enumerate(KINDS):
        ids = [traj_id for traj_id in sorted(verdicts["local"]) if split_traj_id(traj_id)[1] == rollout]
        local = [verdicts["local"][traj_id] for traj_id in ids]
        docker = [verdicts["docker"][traj_id] for traj_id in ids]
        agree = sum(a == b for a, b in zip(local, docker))
        disagreements += [f"{traj_id} ({kind}): local {a}, docker {b}" for traj_id, a, b in zip(ids, local, docker) if a != b]
        table.add_row(kind, f"{sum(v is True for v in local)}/{len(ids)}", f"{sum(v is True for v in docker)}/{len(ids)}", f"{agree}/{len(ids)}")
    console.print(table)
    console.print(f"wall time: local {seconds['local']:.0f} s, docker {seconds['docker']:.0f} s ({args.workers} workers each)")
    for line in disagreements:
        console.print(f"disagreement: {line}  (None: no report)", highlight=False)
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
