"""The local backend: grade each prediction in a fresh sandboxed workspace, the way SWE-smith's docker harness does.

Per prediction: the instance's bug state with its FAIL_TO_PASS test files present (SWE-smith checks out the commit
before the tests were removed), the model patch applied, every change outside the source files reverted, the
FAIL_TO_PASS and PASS_TO_PASS test files run (SWE-smith's `min_testing`) under a timeout in the sandbox with the
harness's own pytest configuration, the log parsed by the repo profile and graded by SWE-smith's rules. The results
land in `<eval>/<traj_id>/`: `patch.diff`, `reverted_changes.json` (what was put back, and why),
`run_instance.log`, `test_output.txt` and, last, `report.json`.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from swebench.harness.constants import APPLY_PATCH_FAIL, APPLY_PATCH_PASS

from oec.evaluation.patching import PatchRejected, apply_model_patch, revert_changes, revert_rule
from oec.evaluation.plan import EvalJob
from oec.evaluation.reports import (
    INSTANCE_LOG_FILE,
    PATCH_FILE,
    REVERTED_FILE,
    TEST_LOG_FILE,
    Outcome,
    empty_patch_report,
    framed_test_log,
    graded_report,
    patch_failed_report,
    timed_out_report,
    write_report,
)
from sweagent.environment.task_repos.profiles import DEFAULT_MOUNT, files_of_tests, get_profile
from sweagent.environment.task_repos.tests_runner import grade, is_resolved, run_tests
from sweagent.environment.task_repos.workspace import build_workspace
from sweagent.utils.files import write_json_atomic, write_text_atomic
from sweagent.utils.scratch import process_scratch_dir


@dataclass(frozen=True)
class PredictionResult:
    traj_id: str
    outcome: Outcome
    resolved: bool
    duration_s: float
    """Wall time of the whole evaluation of this prediction."""
    tests_duration_s: float
    """Wall time of the test command alone (0 when the tests did not run); the rest is the harness's overhead."""


def evaluate_prediction(job: EvalJob, out_dir: Path, *, timeout_s: float | None = None) -> PredictionResult:
    """Grade one prediction and write its files to `out_dir`; `timeout_s` defaults to the repo profile's."""
    started = time.monotonic()
    model = job.prediction.model_name_or_path
    patch = job.prediction.model_patch or ""

    def finish(report: dict, outcome: Outcome, log: list[str], tests_duration_s: float = 0.0) -> PredictionResult:
        write_text_atomic(out_dir / INSTANCE_LOG_FILE, "\n".join(log) + "\n")
        write_report(out_dir, report)
        return PredictionResult(job.traj_id, outcome, report["resolved"], time.monotonic() - started, tests_duration_s)

    log = [f"Evaluating {job.traj_id} (instance {job.instance.instance_id}, model {model!r})"]
    if not patch.strip():
        return finish(empty_patch_report(model), "empty_patch", [*log, "Empty patch: nothing to apply or test."])
    profile = get_profile(job.instance.repo)
    timeout = profile.test_timeout_s if timeout_s is None else timeout_s
    write_text_atomic(out_dir / PATCH_FILE, patch)
    with tempfile.TemporaryDirectory(prefix="oec-eval-", dir=process_scratch_dir(), ignore_cleanup_errors=True) as scratch:
        patch_file = Path(scratch) / "model.patch"
        # git apply rejects a patch whose last line lacks its newline ("corrupt patch").
        patch_file.write_text(patch if patch.endswith("\n") else patch + "\n", encoding="utf-8")
        workspace = build_workspace(job.instance, Path(scratch) / "repo", hide_fail_to_pass_tests=False)
        try:
            applied = apply_model_patch(workspace.path, patch_file)
            reverted = revert_changes(workspace.path, applied, revert_rule(job.instance, profile))
        except PatchRejected as rejected:
            log.append(f"{APPLY_PATCH_FAIL}:\n{rejected}")
            return finish(patch_failed_report(str(rejected), model), "patch_failed", log)
        log.append(f"{APPLY_PATCH_PASS} ({applied.method}):\n{applied.log.strip()}")
        write_json_atomic(out_dir / REVERTED_FILE, reverted)
        log.append("Reverted changes outside the source files:" if reverted else "Every change is to a source file.")
        log += [f"  {path}: {reason}" for path, reason in reverted.items()]
        test_files = files_of_tests(job.instance.FAIL_TO_PASS + job.instance.PASS_TO_PASS)
        suite = run_tests(workspace.path, profile, test_files=test_files, timeout=timeout)
    command = profile.tests_command(test_files, DEFAULT_MOUNT)
    test_log = framed_test_log(DEFAULT_MOUNT, command, suite.output, timed_out=suite.timed_out, timeout_s=timeout)
    write_text_atomic(out_dir / TEST_LOG_FILE, test_log)
    log.append(f"Test runtime: {suite.duration_s:.2f} seconds (exit code {suite.exit_code}, timeout {timeout:g} s)")
    if suite.timed_out:
        return finish(timed_out_report(timeout, model), "timed_out", log, suite.duration_s)
    tests_status = grade(job.instance, suite.statuses)
    return finish(graded_report(tests_status, is_resolved(tests_status), model), "graded", log, suite.duration_s)


def progress_bar(console: Console | None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


@dataclass
class BatchResult:
    results: list[PredictionResult]
    errors: dict[str, str]
    """Traj id → why the harness could not grade it (no report was written, so the next run retries it)."""


def _grade(job: EvalJob, eval_dir: Path, timeout_s: float | None) -> PredictionResult:
    return evaluate_prediction(job, eval_dir / job.traj_id, timeout_s=timeout_s)


def evaluate_locally(
    jobs: list[EvalJob],
    eval_dir: Path,
    *,
    workers: int = 1,
    timeout_s: float | None = None,
    console: Console | None = None,
) -> BatchResult:
    """Grade `jobs` with `workers` threads (run-batch's pool); one prediction's failure is recorded and the batch goes on.

    On Ctrl-C the queued predictions are dropped; the running ones end within their timeout."""
    from sweagent.run.executors import ExecutorConfig, run_tasks

    batch = BatchResult([], {})
    grade = partial(_grade, eval_dir=eval_dir, timeout_s=timeout_s)
    with progress_bar(console) as bar:
        task = bar.add_task("evaluating", total=len(jobs), status="")
        for job, result, error in run_tasks(ExecutorConfig(), grade, jobs, workers):
            # Any failure of one prediction (a broken instance, a full disk) must not stop a batch of thousands.
            if error is None:
                batch.results.append(result)
            else:
                batch.errors[job.traj_id] = f"{type(error).__name__}: {error}"
            resolved = sum(result.resolved for result in batch.results)
            bar.update(task, advance=1, status=f"{resolved} resolved, {len(batch.errors)} errors")
    return batch
