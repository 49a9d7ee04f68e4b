"""The committed demo task set: every instance is checked in the real sandbox against its real pinned sdist.

For each instance the bug must reproduce (every FAIL_TO_PASS test fails, every PASS_TO_PASS test passes) and the
reverse patch must resolve it (every FAIL_TO_PASS test passes). Each repository's pristine tree and test venv are
built once and shared by all its instances; each run covers only the test files the instance's tests live in.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sweagent.environment.task_repos.profiles import files_of_tests, get_profile
from sweagent.environment.task_repos.tests_runner import grade, is_resolved, run_tests
from sweagent.environment.task_repos.workspace import apply_patch, build_workspace
from sweagent.instance import TaskInstance, load_instances

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_INSTANCES = REPO_ROOT / "config" / "demo" / "instances.json"
INSTANCES = load_instances(DEMO_INSTANCES)
INSTANCE_ID = re.compile(r"^(?P<repo_name>[a-z0-9-]+__[a-z0-9-]+\.[0-9a-f]{8})\.(?P<modifier>func_pm_[a-z_]+)__[a-z0-9]{8}$")


def test_the_demo_set_is_large_and_varied_enough() -> None:
    repos = Counter(instance.repo for instance in INSTANCES)
    modifiers = Counter(INSTANCE_ID.match(instance.instance_id)["modifier"] for instance in INSTANCES)
    assert len(INSTANCES) >= 20 and len(repos) >= 2
    assert len(modifiers) >= 6
    assert len({instance.instance_id for instance in INSTANCES}) == len(INSTANCES)


@pytest.mark.parametrize("instance", INSTANCES, ids=lambda instance: instance.instance_id)
def test_instance_fields_follow_swe_smith(instance: TaskInstance) -> None:
    match = INSTANCE_ID.match(instance.instance_id)
    profile = get_profile(instance.repo)
    assert match and match["repo_name"] == profile.repo_name == instance.repo.split("/")[1]
    assert instance.source == profile.source
    assert instance.image_name == f"{'swebench' if instance.repo.startswith('swesmith/') else 'oec'}/swesmith.x86_64.{profile.repo_name.replace('__', '_1776_')}"
    assert 1 <= len(instance.FAIL_TO_PASS) <= 10
    assert instance.PASS_TO_PASS and not set(instance.FAIL_TO_PASS) & set(instance.PASS_TO_PASS)
    assert instance.patch.startswith("--- a/") and "\n+++ b/" in instance.patch


@pytest.mark.parametrize("instance", INSTANCES, ids=lambda instance: instance.instance_id)
def test_problem_statement_reports_the_failure_without_the_fix(instance: TaskInstance) -> None:
    statement = instance.problem_statement
    assert any(test in statement for test in instance.FAIL_TO_PASS)
    # The fix is the released code the bug patch took out (lines it only moved are in the buggy code too):
    # none of it may appear in the report.
    lines = instance.patch.splitlines()
    removed = {line[1:].strip() for line in lines if line.startswith("-") and not line.startswith("---")}
    added = {line[1:].strip() for line in lines if line.startswith("+") and not line.startswith("+++")}
    assert not [line for line in removed - added if len(line) > 8 and line in statement]
    assert "func_pm_" not in statement and "--- a/" not in statement and "\n@@ " not in statement


@pytest.mark.slow
@pytest.mark.parametrize("instance", INSTANCES, ids=lambda instance: instance.instance_id)
def test_bug_reproduces_and_reverse_patch_resolves_it(instance: TaskInstance, tmp_path: Path) -> None:
    profile = get_profile(instance.repo)
    workspace = build_workspace(instance, tmp_path / "repo", hide_fail_to_pass_tests=False)

    buggy = run_tests(workspace.path, profile, test_files=files_of_tests(instance.FAIL_TO_PASS + instance.PASS_TO_PASS))
    report = grade(instance, buggy.statuses)
    assert not buggy.timed_out
    assert report["FAIL_TO_PASS"]["success"] == [], "FAIL_TO_PASS tests pass with the bug in place"
    assert report["PASS_TO_PASS"]["failure"] == [], "PASS_TO_PASS tests fail with the bug in place"

    apply_patch(workspace.path, instance.patch, reverse=True)
    fixed = run_tests(workspace.path, profile, test_files=files_of_tests(instance.FAIL_TO_PASS))
    fixed_report = grade(instance.model_copy(update={"PASS_TO_PASS": []}), fixed.statuses)
    assert is_resolved(fixed_report), f"reverse patch leaves failing: {fixed_report['FAIL_TO_PASS']['failure']}"


@pytest.mark.slow
def test_the_builder_reproduces_the_committed_instances(tmp_path: Path) -> None:
    """Seeded and idempotent: validating afresh gives back, byte for byte, instances that are in the committed file."""
    output = tmp_path / "instances.json"
    command = [sys.executable, str(REPO_ROOT / "scripts" / "build_demo_instances.py"), "--repos", "swesmith/mewwts__addict.75284f95", "--per-repo", "2"]
    subprocess.run([*command, "--fresh", "--output", str(output)], check=True, capture_output=True, cwd=tmp_path)
    rebuilt = json.loads(output.read_text(encoding="utf-8"))
    committed = {row["instance_id"]: row for row in json.loads(DEMO_INSTANCES.read_text(encoding="utf-8"))}
    assert len(rebuilt) == 2
    assert all(row == committed.get(row["instance_id"]) for row in rebuilt)
