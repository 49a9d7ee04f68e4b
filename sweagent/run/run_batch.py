"""`sweagent run-batch`: many instances × rollouts, in threads or on Ray, resumable, with a live progress line.

    sweagent run-batch --config config/local_demo.yaml --instances.path config/demo/instances.json \
        --rollouts_per_instance 2 --num_workers 2 --output_dir trajectories/oec_demo

Rerunning the same command skips every rollout whose trajectory is finished and redoes partial ones.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sweagent.agent.agents import AgentConfig
from sweagent.environment.problem import InstanceProblem
from sweagent.environment.swe_env import EnvironmentConfig
from sweagent.instance import InstanceError, TaskInstance
from sweagent.predictions import PREDS_FILE, merge_predictions
from sweagent.run.batch_instances import BatchInstanceSourceConfig
from sweagent.run.config_loading import ConfigError, build_config, parse_cli, redact, resolve_config_path
from sweagent.run.executors import ExecutorConfig, run_tasks
from sweagent.run.run_single import DEFAULT_CONFIG, dump_config, run_one
from sweagent.trajectory import TrajectoryError, iter_trajectory_files, load_trajectory, traj_id_for, traj_path
from sweagent.utils.files import write_text_atomic

EXIT_STATUS_FILE = "run_batch_exit_statuses.yaml"
CONFIG_DUMP_FILE = "run_batch.config.yaml"


class RunBatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: AgentConfig
    """The agent: templates, tools, model (often `type: switching`)."""
    env: EnvironmentConfig = Field(default_factory=EnvironmentConfig)
    """Where repositories live and commands run."""
    instances: BatchInstanceSourceConfig = Field(default_factory=BatchInstanceSourceConfig)
    """Which instances to run."""
    output_dir: Path = Path("trajectories/batch")
    """Run directory."""
    num_workers: int = 1
    """Rollouts run at the same time."""
    rollouts_per_instance: int = 1
    """Rollouts of each instance; with more than one, folders are named <instance_id>__r<k>."""
    seed: int = 0
    """Run seed; with the rollout id it fixes every switch point."""
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    """threads (default) or ray."""
    redo_existing: bool = False
    """Rerun rollouts whose trajectory is already finished."""


class RolloutJob(BaseModel):
    traj_id: str
    instance: TaskInstance


class RolloutSummary(BaseModel):
    traj_id: str
    exit_status: str
    cost: float


def _finished_status(path: Path) -> str | None:
    """The exit status of a finished rollout; None for a missing or partial one.

    The .pred is written last, so a rollout killed between its final .traj and its .pred counts as partial.
    """
    if not path.is_file() or not path.with_suffix(".pred").is_file():
        return None
    try:
        return load_trajectory(path).info.exit_status
    except TrajectoryError:
        return None


def _job_runner(config: RunBatchConfig) -> Any:
    replay_config = dump_config(config)

    def run(job: RolloutJob) -> RolloutSummary:
        shutil.rmtree(config.output_dir / job.traj_id, ignore_errors=True)  # a partial rollout starts over
        trajectory = run_one(config.agent, config.env, InstanceProblem(job.instance), output_dir=config.output_dir,
                             traj_id=job.traj_id, replay_config=replay_config, seed=config.seed)
        return RolloutSummary(traj_id=job.traj_id, exit_status=trajectory.info.exit_status or "exit_error",
                              cost=float(trajectory.info.model_stats.get("instance_cost", 0.0)))

    return run


def plan_jobs(config: RunBatchConfig, instances: list[TaskInstance]) -> tuple[list[RolloutJob], int]:
    """Every rollout still to run, and how many are already finished."""
    k = config.rollouts_per_instance
    jobs, finished = [], 0
    for instance in instances:
        for rollout in range(k):
            traj_id = traj_id_for(instance.instance_id, rollout if k > 1 else None)
            if not config.redo_existing and _finished_status(traj_path(config.output_dir, traj_id)):
                finished += 1
                continue
            jobs.append(RolloutJob(traj_id=traj_id, instance=instance))
    return jobs, finished


def write_exit_statuses(output_dir: Path) -> dict[str, list[str]]:
    """`run_batch_exit_statuses.yaml` from every finished trajectory of the run directory."""
    by_status: dict[str, list[str]] = {}
    for path in iter_trajectory_files(output_dir):
        status = _finished_status(path)
        if status:
            by_status.setdefault(status, []).append(path.parent.name)
    write_text_atomic(output_dir / EXIT_STATUS_FILE, yaml.safe_dump({"instances_by_exit_status": by_status}, sort_keys=True))
    return by_status


def run_batch(config: RunBatchConfig, console: Console | None = None) -> Counter[str]:
    console = console or Console(stderr=True)
    instances = config.instances.load()
    if not instances:
        raise InstanceError(f"instances: no instance left after filter '{config.instances.filter}' and slice '{config.instances.slice}'")
    config.output_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(config.output_dir / CONFIG_DUMP_FILE, yaml.safe_dump(redact(config.model_dump(mode="json")), sort_keys=False))
    jobs, finished = plan_jobs(config, instances)
    counts: Counter[str] = Counter()
    cost, running = 0.0, 0
    console.print(f"[bold]run-batch[/]: {len(jobs)} rollouts to run, {finished} already finished -> {config.output_dir}")
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[status]}")]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("rollouts", total=len(jobs), status="")

        def refresh() -> None:
            statuses = " ".join(f"{name}:{n}" for name, n in sorted(counts.items()))
            progress.update(task, status=f"running {running} | ${cost:.2f} | {statuses}")

        def started(_: RolloutJob) -> None:
            nonlocal running
            running += 1
            refresh()

        for job, summary, error in run_tasks(config.executor, _job_runner(config), jobs, config.num_workers, started):
            running -= 1
            if error is not None:
                counts["failed"] += 1
                console.print(f"[red]{job.traj_id}: {type(error).__name__}: {error}")
            else:
                counts[summary.exit_status] += 1
                cost += summary.cost
            progress.advance(task)
            refresh()
            write_exit_statuses(config.output_dir)
    merge_predictions([config.output_dir], config.output_dir / PREDS_FILE)
    by_status = write_exit_statuses(config.output_dir)
    console.print("exit statuses: " + ", ".join(f"{status}={len(ids)}" for status, ids in sorted(by_status.items())))
    return counts


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(flag in argv for flag in ("-h", "--help")):
        print(__doc__)
        print("Options: --config FILE (repeatable; default config/default.yaml) and any config key as --dotted.key VALUE,\n"
              "e.g. --instances.filter REGEX --instances.slice :10 --instances.shuffle true --num_workers 4\n"
              "--rollouts_per_instance 2 --executor.type ray --executor.ray_address auto --redo_existing true")
        return 0
    try:
        config_files, overrides = parse_cli(argv)
        config = build_config(RunBatchConfig, config_files or [resolve_config_path(DEFAULT_CONFIG)], overrides)
        run_batch(config)
    except (ConfigError, InstanceError) as exc:
        print(f"sweagent run-batch: {exc}", file=sys.stderr)
        return 2
    return 0
