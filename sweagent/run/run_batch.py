"""`sweagent run-batch`: many instances × rollouts, in threads or on Ray, resumable, with a live progress line.

    sweagent run-batch --config config/local_demo.yaml --instances.path config/demo/instances.json \
        --rollouts_per_instance 2 --num_workers 2 --output_dir trajectories/oec_demo

Rerunning the same command skips every rollout whose trajectory is finished and redoes partial ones, and those that
infrastructure ended (see `is_infrastructure_failure`). One run-batch at a time writes to an output dir.
With `--branches N`, each rollout's student prefix gets N expert continuations (`run/branching.py`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sweagent.agent.retry_agent import AnyAgentConfig
from sweagent.environment.problem import InstanceProblem
from sweagent.environment.swe_env import EnvironmentConfig
from sweagent.ids import branch_traj_id
from sweagent.instance import TaskInstance
from sweagent.predictions import PREDS_FILE, merge_predictions
from sweagent.run.batch_instances import BatchInstanceSourceConfig
from sweagent.run.batch_record import BatchRecord, outline_of
from sweagent.run.branching import branch_builder, load_prefix, record_skip
from sweagent.run.config_loading import ConfigError, build_config, parse_cli, redact, resolve_config_path
from sweagent.run.executors import ExecutorConfig, run_tasks
from sweagent.run.run_single import (
    DEFAULT_CONFIG,
    build_agent,
    check_agent,
    dump_config,
    first_line,
    is_infrastructure_failure,
    prepare_output_dir,
    run_one,
)
from sweagent.trajectory import Trajectory, TrajectoryError, load_trajectory, traj_id_for, traj_path
from sweagent.utils.errors import OECError
from sweagent.utils.files import write_text_atomic

CONFIG_DUMP_FILE = "run_batch.config.yaml"
LOCK_FILE = ".run_batch.lock"
"""Held (flock) by the run-batch writing to the output dir; it holds that process's pid and host."""


class RunBatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: AnyAgentConfig
    """The agent: templates, tools, model (often `type: switching`), or `type: retry` (attempts, then a pick)."""
    env: EnvironmentConfig = Field(default_factory=EnvironmentConfig)
    """Where repositories live and commands run."""
    instances: BatchInstanceSourceConfig = Field(default_factory=BatchInstanceSourceConfig)
    """Which instances to run."""
    output_dir: Path = Path("trajectories/batch")
    """Run directory."""
    num_workers: int = Field(1, ge=1)
    """Rollouts run at the same time."""
    rollouts_per_instance: int = Field(1, ge=1)
    """Rollouts of each instance; with more than one, folders are named <instance_id>__r<k>."""
    branches: int = Field(1, ge=1)
    """Expert continuations of each rollout's student prefix (needs a switching model); with more than one, folders
    are named <instance_id>__r<k>__b<j>, branch 0 runs the student and the others replay its prefix."""
    seed: int = 0
    """Run seed; with the rollout id it fixes every switch point."""
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    """threads (default) or ray."""
    redo_existing: bool = False
    """Rerun rollouts whose trajectory is already finished."""
    retry_infra_failures: int = Field(1, ge=0)
    """Extra attempts, within this run, for a rollout that infrastructure ended (the environment did not start, the
    model server stayed unreachable); each rerun of the command tries such rollouts again. Model outcomes
    (submitted, exit_format, exit_cost, ...) are never retried."""
    abort_after_identical_failures: int = Field(3, ge=0)
    """Stop the batch when the first N rollouts to end all failed for infrastructure with the same error: that is a
    config mistake (a bad deployment setting, a wrong model server address), not N unlucky instances. 0: never."""

    @model_validator(mode="after")
    def _branches_need_a_switch(self) -> RunBatchConfig:
        from sweagent.agent.switching_model import SwitchingModelConfig

        if self.branches > 1 and not isinstance(getattr(self.agent, "model", None), SwitchingModelConfig):
            raise ValueError(f"branches={self.branches} needs agent.model.type 'switching' (a student prefix and an expert "
                             "to continue it)")
        return self


class RolloutJob(BaseModel):
    traj_id: str
    """The rollout's id (with branches: the prefix id `<iid>__r<k>`)."""
    instance: TaskInstance
    branches: list[int] | None = None
    """The branches of this prefix still to run, in order (None: an unbranched rollout)."""

    @property
    def size(self) -> int:
        return len(self.branches) if self.branches is not None else 1


class RolloutSummary(BaseModel):
    traj_id: str
    exit_status: str
    cost: float
    finished: bool
    """False for an infrastructure failure: it has no .pred, and a rerun tries it again."""
    message: str = ""
    """First line of the exit message."""
    attempts: int = 1
    """Attempts of this rollout so far, earlier runs included."""
    outline: Trajectory | None = None
    """`info` and step roles of the trajectory, for the batch record (None for a skipped branch)."""
    skipped: str | None = None
    """Why a branch was not run (its prefix diverged on replay, or branch 0 never handed over)."""


def _attempts_so_far(path: Path) -> list[dict[str, Any]]:
    """How the earlier attempts of a rollout ended, from the trajectory the last one left (none: no attempt yet)."""
    try:
        previous = load_trajectory(path)
    except TrajectoryError:
        return []
    info = previous.info
    return [*(getattr(info, "earlier_attempts", None) or []),
            {"exit_status": info.exit_status, "exit_message": first_line(getattr(info, "exit_message", None) or ""),
             "steps": len(previous.trajectory)}]


def _job_runner(config: RunBatchConfig) -> Any:
    replay_config = dump_config(config)

    def rollout(job: RolloutJob, traj_id: str, build: Any = build_agent) -> RolloutSummary:
        path = traj_path(config.output_dir, traj_id)
        for _ in range(config.retry_infra_failures + 1):
            earlier = _attempts_so_far(path)
            shutil.rmtree(path.parent, ignore_errors=True)  # a partial or failed attempt starts over
            trajectory = run_one(config.agent, config.env, InstanceProblem(job.instance), output_dir=config.output_dir,
                                 traj_id=traj_id, replay_config=replay_config, seed=config.seed,
                                 earlier_attempts=earlier, build=build)
            if not is_infrastructure_failure(trajectory):
                break
        info = trajectory.info
        summary = RolloutSummary(traj_id=traj_id, exit_status=info.exit_status or "exit_error",
                                 cost=float(info.model_stats.get("instance_cost", 0.0)),
                                 finished=not is_infrastructure_failure(trajectory),
                                 message=first_line(getattr(info, "exit_message", None) or ""), attempts=len(earlier) + 1,
                                 outline=outline_of(trajectory))
        return summary

    def skipped(job: RolloutJob, traj_id: str, branch: int, reason: str, *, diverged: bool) -> RolloutSummary:
        record_skip(config.output_dir, traj_id, job.traj_id, branch, reason, diverged=diverged)
        return RolloutSummary(traj_id=traj_id, exit_status="skipped_branch", cost=0.0, finished=True, message=reason,
                              skipped=reason)

    def run(job: RolloutJob) -> list[RolloutSummary]:
        if job.branches is None:
            return [rollout(job, job.traj_id)]
        summaries, prefix, reason = [], None, ""
        draws_id = job.traj_id if config.rollouts_per_instance > 1 else job.instance.instance_id  # the unbranched id
        for branch in job.branches:
            traj_id = branch_traj_id(job.traj_id, branch)
            if branch == 0:
                summaries.append(rollout(job, traj_id, branch_builder(job.traj_id, 0, None, draws_id)))
                if not summaries[0].finished:  # no prefix yet: every branch waits for the next run
                    return summaries
                continue
            if prefix is None and not reason:
                prefix, reason = load_prefix(config.output_dir, job.traj_id)
            summary = None if prefix is None else rollout(job, traj_id, branch_builder(job.traj_id, branch, prefix, draws_id))
            if summary is not None and getattr(summary.outline.info, "exit_cause", None) == "BranchDiverged":
                summary = skipped(job, traj_id, branch, summary.message, diverged=True)
            summaries.append(summary or skipped(job, traj_id, branch, reason, diverged=False))
        return summaries

    return run


def plan_jobs(config: RunBatchConfig, instances: list[TaskInstance], record: BatchRecord) -> tuple[list[RolloutJob], int]:
    """Every rollout (or prefix with the branches it still needs) to run, and how many rollouts are already done.

    A prefix whose branch 0 must run again runs all its branches again: they continue branch 0's prefix.
    """
    k, n = config.rollouts_per_instance, config.branches
    jobs, done = [], 0
    for instance in instances:
        for rollout in range(k):
            if n == 1:
                traj_id = traj_id_for(instance.instance_id, rollout if k > 1 else None)
                if not config.redo_existing and record.is_done(traj_id):
                    done += 1
                else:
                    jobs.append(RolloutJob(traj_id=traj_id, instance=instance))
                continue
            prefix_id = traj_id_for(instance.instance_id, rollout)
            ids = [branch_traj_id(prefix_id, branch) for branch in range(n)]
            todo = list(range(n)) if config.redo_existing or not record.is_done(ids[0]) else \
                [branch for branch in range(n) if not record.is_done(ids[branch])]
            done += n - len(todo)
            if todo:
                jobs.append(RolloutJob(traj_id=prefix_id, instance=instance, branches=todo))
    for job in jobs:  # what runs again no longer stands in the record
        for traj_id in [job.traj_id] if job.branches is None else [branch_traj_id(job.traj_id, b) for b in job.branches]:
            record.forget(traj_id)
    return jobs, done


@contextmanager
def output_dir_lock(output_dir: Path) -> Iterator[None]:
    """Hold the output dir for this process: a second run-batch on it stops with one line naming the holder.

    Two writers would both run every unfinished rollout and delete each other's partial work. The lock is an
    flock, so it ends with its process however that ends, and the next run-batch simply takes it.
    """
    with open(output_dir / LOCK_FILE, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown pid"
            raise ConfigError(f"output_dir '{output_dir}': another run-batch ({holder}) is writing to it; "
                              "wait for it to end or choose another --output_dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield


def check_batch(config: RunBatchConfig, instances: list[TaskInstance]) -> None:
    """What can be checked before any environment starts: the agent, and what the deployment checks of every
    instance (the sandbox: a repository profile; docker: the engine answers and has the image)."""
    check_agent(config.agent, config.env, InstanceProblem(instances[0]), config.seed)
    config.env.deployment.check_instances(instances, str(config.instances.path))


class _IdenticalFailures:
    """Watches the first rollouts to end: when all of the first `limit` failed for infrastructure with the same
    error (instance ids aside), the batch is misconfigured and should stop."""

    def __init__(self, limit: int):
        self.limit = limit
        self.errors: list[str | None] = []

    def verdict(self, job: RolloutJob, summary: RolloutSummary | None, error: BaseException | None) -> str | None:
        """The shared error once the first `limit` rollouts have all failed with it; else None."""
        if len(self.errors) >= self.limit:
            return None
        if error is not None:
            message: str | None = f"{type(error).__name__}: {first_line(str(error))}"
        else:
            message = None if summary is None or summary.finished else f"{summary.exit_status}: {summary.message}"
        self.errors.append(message and message.replace(job.instance.instance_id, "<instance>"))
        if len(self.errors) == self.limit and None not in self.errors and len(set(self.errors)) == 1:
            return self.errors[0]
        return None


def run_batch(config: RunBatchConfig, console: Console | None = None) -> Counter[str]:
    """Run every unfinished rollout; counts by exit status, plus `infra_failed` (will be retried on a rerun) and
    `failed` (the rollout raised before it had a trajectory). A misconfigured batch raises ConfigError."""
    console = console or Console(stderr=True)
    instances = config.instances.load()
    prepare_output_dir(config.output_dir)
    with output_dir_lock(config.output_dir):
        check_batch(config, instances)
        write_text_atomic(config.output_dir / CONFIG_DUMP_FILE, yaml.safe_dump(redact(config.model_dump(mode="json")), sort_keys=False))
        record = BatchRecord.load(config.output_dir)
        jobs, finished = plan_jobs(config, instances, record)
        console.print(f"[bold]run-batch[/]: {sum(job.size for job in jobs)} rollouts to run, {finished} already finished "
                      f"-> {config.output_dir}")
        counts, aborted = _run_jobs(config, jobs, record, console)
        merge_predictions([config.output_dir], config.output_dir / PREDS_FILE)
        by_status = record.write()
    skipped = f", skipped branches={len(record.skipped)}" if record.skipped else ""
    console.print("exit statuses: " + ", ".join(f"{status}={len(ids)}" for status, ids in sorted(by_status.items())) + skipped)
    if aborted is not None:
        raise ConfigError(f"stopped: the first {config.abort_after_identical_failures} rollouts all failed with the same "
                          f"error, which looks like a config mistake (they stay unfinished): {aborted}")
    return counts


def _run_jobs(config: RunBatchConfig, jobs: list[RolloutJob], record: BatchRecord,
              console: Console) -> tuple[Counter[str], str | None]:
    """Run `jobs` with a live progress line, each result entered in `record` and its files rewritten; stop early when
    the first ones all fail alike. Returns the counts and that shared error (None when the batch ran to its end)."""
    counts: Counter[str] = Counter()
    cost, running = 0.0, 0
    watch = _IdenticalFailures(config.abort_after_identical_failures)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[status]}")]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("rollouts", total=sum(job.size for job in jobs), status="")

        def refresh() -> None:
            statuses = " ".join(f"{name}:{n}" for name, n in sorted(counts.items()))
            progress.update(task, status=f"running {running} | ${cost:.2f} | {statuses}")

        def started(_: RolloutJob) -> None:
            nonlocal running
            running += 1
            refresh()

        results = run_tasks(config.executor, _job_runner(config), jobs, config.num_workers, started)
        try:
            for job, summaries, error in results:
                running -= 1
                if error is not None:
                    counts["failed"] += job.size
                    console.print(escape(f"{job.traj_id}: {type(error).__name__}: {first_line(str(error))}"), style="red", soft_wrap=True)
                for summary in summaries or []:
                    record.add(summary.traj_id, summary.outline if summary.finished else None, summary.skipped)
                    if summary.skipped is not None:
                        counts["skipped_branch"] += 1
                        console.print(escape(f"{summary.traj_id}: branch skipped: {summary.skipped}"), style="yellow", soft_wrap=True)
                    elif not summary.finished:
                        counts["infra_failed"] += 1
                        console.print(escape(f"{summary.traj_id}: {summary.exit_status} after {summary.attempts} attempt(s), "
                                             f"retried on a rerun: {summary.message}"), style="yellow", soft_wrap=True)
                    else:
                        counts[summary.exit_status] += 1
                        cost += summary.cost
                if summaries is not None and len(summaries) < job.size:  # branch 0 unfinished: the rest wait
                    counts["infra_failed"] += job.size - len(summaries)
                progress.advance(task, job.size)
                refresh()
                record.write_soon()
                shared = watch.verdict(job, summaries[0] if summaries else None, error)
                if shared is not None:
                    return counts, shared
        finally:
            results.close()  # stops handing out jobs; rollouts already running end first
    return counts, None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(flag in argv for flag in ("-h", "--help")):
        print(__doc__)
        print("Options: --config FILE (repeatable; default config/default.yaml) and any config key as --dotted.key VALUE,\n"
              "e.g. --instances.filter REGEX --instances.slice :10 --instances.shuffle true --num_workers 4\n"
              "--rollouts_per_instance 2 --branches 3 --executor.type ray --executor.ray_address auto --redo_existing true\n"
              "--retry_infra_failures 1 --abort_after_identical_failures 3")
        return 0
    try:
        config_files, overrides = parse_cli(argv)
        config = build_config(RunBatchConfig, config_files or [resolve_config_path(DEFAULT_CONFIG)], overrides)
        counts = run_batch(config)
    except OECError as exc:  # every bad-input error of OEC derives from it
        print(f"sweagent run-batch: {exc}", file=sys.stderr)
        return 2
    unfinished = counts["infra_failed"] + counts["failed"]
    if unfinished:
        print(f"sweagent run-batch: {unfinished} rollouts did not finish (see the lines above); "
              "rerun the same command to try them again", file=sys.stderr)
        return 1
    return 0
