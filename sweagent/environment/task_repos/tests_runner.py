"""Run a repository's tests in a sandboxed workspace and grade the per-test results the way SWE-smith does.

Task validation (building the demo set), its regression test and the local evaluation harness all go through
`run_tests` and `grade`, so "this instance is resolved" means the same thing everywhere: every FAIL_TO_PASS
test and every PASS_TO_PASS test passes (swebench's `get_eval_tests_report` / `get_resolution_status`).

The tests run with a configuration the harness owns (see `RepoProfile.tests_command`): its own pytest.ini from
outside the workspace, no plugin discovery, no PYTHONPATH while the interpreter starts. Nothing in the workspace
other than the code the tests import (and the conftest.py files the harness restores) takes part in a run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from swebench.harness.constants import FAIL_TO_PASS, PASS_TO_PASS, ResolvedStatus, TestStatus
from swebench.harness.grading import get_eval_tests_report, get_resolution_status

from sweagent.environment.sandbox.bwrap import run_sandboxed
from sweagent.environment.task_repos.profiles import DEFAULT_MOUNT, PYTEST_CONFIG, RepoProfile
from sweagent.environment.task_repos.test_venv import tests_env, venv_binds
from sweagent.instance import TaskInstance
from sweagent.utils.scratch import process_scratch_dir

PASSING = (TestStatus.PASSED.value, TestStatus.XFAIL.value)
FAILING = (TestStatus.FAILED.value, TestStatus.ERROR.value)


@dataclass(frozen=True)
class SuiteResult:
    """One run of (part of) a test suite: per-test statuses as the profile's log parser read them."""

    statuses: dict[str, str]
    output: str
    exit_code: int
    timed_out: bool
    duration_s: float

    def passed(self) -> set[str]:
        return {test for test, status in self.statuses.items() if status in PASSING}

    def failed(self) -> set[str]:
        return {test for test, status in self.statuses.items() if status in FAILING}


def run_tests(
    workspace_dir: str | Path,
    profile: RepoProfile,
    *,
    test_files: Sequence[str] = (),
    timeout: float | None = None,
    mount: str = DEFAULT_MOUNT,
) -> SuiteResult:
    """Run `test_files` (default: the whole suite) of the workspace in the sandbox, with the repo's test venv."""
    with tempfile.TemporaryDirectory(prefix="oec-pytest-", dir=process_scratch_dir()) as folder:
        config = Path(folder) / "pytest.ini"
        config.write_text(profile.pytest_config(mount), encoding="utf-8")
        result = run_sandboxed(
            profile.tests_command(test_files, mount),
            workspace_dir,
            timeout=profile.test_timeout_s if timeout is None else timeout,
            env=tests_env(profile, mount),
            ro_binds=[*venv_binds(profile), f"{config}:{PYTEST_CONFIG}"],
            mount=mount,
        )
    statuses = {} if result.timed_out else profile.parse_log(result.output)
    return SuiteResult(statuses, result.output, result.exit_code, result.timed_out, result.duration_s)


def grade(instance: TaskInstance, statuses: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """SWE-smith's `tests_status`: success/failure lists for FAIL_TO_PASS, PASS_TO_PASS (and empty *_TO_FAIL)."""
    gold = {FAIL_TO_PASS: instance.FAIL_TO_PASS, PASS_TO_PASS: instance.PASS_TO_PASS}
    return get_eval_tests_report(statuses, gold)


def is_resolved(tests_status: dict[str, dict[str, list[str]]]) -> bool:
    """Resolved = every FAIL_TO_PASS and every PASS_TO_PASS test passes."""
    return get_resolution_status(tests_status) == ResolvedStatus.FULL.value
