"""The docker backend: SWE-smith's own harness grades in docker, and its reports are collected into our layout.

It runs against the images `scripts/docker_images.sh build` makes (or SWE-smith's own, on a cluster), through
`oec.evaluation.swesmith_eval`, which is `python -m swesmith.harness.eval` with OEC's repository profiles
registered. Every image is checked first: a missing one, or an engine that does not answer, is one line naming what
to run. SWE-smith keys predictions and its log folders by instance id, so predictions are split
into rounds holding at most one prediction per instance (several rollouts of an instance go to different rounds);
each round is one call with its own run id, run in `<eval>/.swesmith/`, where SWE-smith writes
`logs/run_evaluation/<run_id>/<instance_id>/`. Its report and logs are then copied byte for byte into
`<eval>/<traj_id>/`, the layout the local backend writes. SWE-smith takes the test timeout from its repo profiles.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from swebench.harness.constants import KEY_INSTANCE_ID, KEY_MODEL, KEY_PREDICTION, RUN_EVALUATION_LOG_DIR

from oec.evaluation.errors import EvaluationError
from oec.evaluation.plan import EvalJob
from oec.evaluation.reports import INSTANCE_LOG_FILE, PATCH_FILE, REPORT_FILE, TEST_LOG_FILE
from sweagent.environment.container.deployment import ContainerError, inspect_image, run_engine
from sweagent.environment.task_repos.profiles import RepoProfileError
from sweagent.utils.files import write_bytes_atomic, write_json_atomic

SWESMITH_DIR = ".swesmith"
"""Working directory of the SWE-smith calls, inside the eval dir."""
# Copied before the report: the report is copied last, so it marks a traj id as done only once everything is there.
_LOG_FILES = (PATCH_FILE, INSTANCE_LOG_FILE, TEST_LOG_FILE)


@dataclass(frozen=True)
class SwesmithRound:
    """One `swesmith.harness.eval` call: at most one prediction per instance."""

    run_id: str
    argv: list[str]
    cwd: Path
    traj_ids: dict[str, str]
    """Instance id → the traj id whose prediction this round grades."""

    def output_dir(self, instance_id: str) -> Path:
        return self.cwd / RUN_EVALUATION_LOG_DIR / self.run_id / instance_id

    def container_names(self) -> list[str]:
        """The names SWE-smith gives this round's containers (`swesmith.eval.<run_id>.<instance_id>`)."""
        return [f"swesmith.eval.{self.run_id}.{instance_id}" for instance_id in self.traj_ids]


def plan_rounds(
    jobs: list[EvalJob], instances_file: Path, eval_dir: Path, *, run_id: str, workers: int, python: str = sys.executable
) -> list[SwesmithRound]:
    """Write each round's predictions file and build its command line (SWE-smith's real flags)."""
    if instances_file.suffix not in (".json", ".jsonl"):
        raise EvaluationError(f"{instances_file}: SWE-smith's harness reads only .json or .jsonl instance files (--instances)")
    members: list[dict[str, EvalJob]] = []
    for job in sorted(jobs, key=lambda job: job.traj_id):
        instance_id = job.instance.instance_id
        round_ = next((round_ for round_ in members if instance_id not in round_), None)
        if round_ is None:
            round_ = {}
            members.append(round_)
        round_[instance_id] = job
    work = (eval_dir / SWESMITH_DIR).resolve()
    rounds = []
    for index, round_ in enumerate(members):
        round_id = run_id if len(members) == 1 else f"{run_id}.round{index}"
        preds_file = work / f"preds.{round_id}.json"
        write_json_atomic(
            preds_file,
            {
                instance_id: {
                    KEY_INSTANCE_ID: instance_id,
                    KEY_MODEL: job.prediction.model_name_or_path,
                    KEY_PREDICTION: job.prediction.model_patch,
                }
                for instance_id, job in round_.items()
            },
        )
        argv = [
            python, "-m", "oec.evaluation.swesmith_eval",
            "--dataset_path", str(instances_file.resolve()),
            "--predictions_path", str(preds_file),
            "--run_id", round_id,
            "--workers", str(workers),
        ]  # fmt: skip
        rounds.append(SwesmithRound(round_id, argv, work, {iid: job.traj_id for iid, job in round_.items()}))
    return rounds


def collect_round(round_: SwesmithRound, eval_dir: Path) -> dict[str, str]:
    """Copy SWE-smith's report and logs of each instance into `<eval>/<traj_id>/`; returns traj id → error."""
    errors = {}
    for instance_id, traj_id in round_.traj_ids.items():
        source = round_.output_dir(instance_id)
        if not (source / REPORT_FILE).is_file():
            errors[traj_id] = f"SWE-smith wrote no {REPORT_FILE} for {instance_id} (see {source / INSTANCE_LOG_FILE})"
            continue
        for name in (*_LOG_FILES, REPORT_FILE):
            if (source / name).is_file():
                write_bytes_atomic(eval_dir / traj_id / name, (source / name).read_bytes())
    return errors


def check_images(jobs: list[EvalJob]) -> None:
    """Every image SWE-smith's harness will start (its profile's `image_name`) exists, and the engine answers."""
    from sweagent.environment.container.swesmith_profiles import profile_for_repo  # imports all of SWE-smith's profiles

    for repo in sorted({job.instance.repo for job in jobs}):
        try:
            inspect_image("docker", profile_for_repo(repo).image_name)
        except (ContainerError, RepoProfileError) as exc:
            raise EvaluationError(f"--backend docker: {exc}") from None


def remove_stale_containers(round_: SwesmithRound) -> None:
    """Remove containers an interrupted earlier call of this round left behind.

    SWE-smith names its containers by run id and instance id, so one left by a killed or failed call of the same run
    makes every later call of that instance fail at `create` (the name is taken). The names are this round's own,
    so nothing else is touched.
    """
    result = run_engine("docker", "rm", "--force", *round_.container_names())
    failures = [line for line in result.stderr.splitlines() if line.strip() and "No such container" not in line]
    if result.returncode != 0 and failures:
        raise EvaluationError(f"--backend docker: could not remove a stale container: {failures[0]}")


def evaluate_with_docker(
    jobs: list[EvalJob], instances_file: Path, eval_dir: Path, *, run_id: str, workers: int = 1
) -> dict[str, str]:
    """Run every round through SWE-smith's harness and collect its reports; returns traj id → error."""
    errors: dict[str, str] = {}
    if jobs:
        check_images(jobs)
    for round_ in plan_rounds(jobs, instances_file, eval_dir, run_id=run_id, workers=workers):
        # A folder left by an earlier round with this run id holds another traj's results: SWE-smith would skip
        # the instance and we would collect the wrong report.
        for instance_id in round_.traj_ids:
            shutil.rmtree(round_.output_dir(instance_id), ignore_errors=True)
        remove_stale_containers(round_)
        print(f"[eval_swesmith] {' '.join(round_.argv)}", flush=True)
        subprocess.run(round_.argv, cwd=round_.cwd, check=False)
        errors.update(collect_round(round_, eval_dir))
    return errors
