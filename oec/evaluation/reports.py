"""SWE-smith's per-prediction report (`report.json`) and test log (`test_output.txt`), written and read in one place.

The layout and bytes follow `swesmith.harness.eval`: `<eval>/<traj_id>/report.json` is a flat object (not keyed by
instance id) written with `json.dumps(report, indent=4)` and no trailing newline; a graded run holds
`patch_exists, resolved, tests_status, model_name_or_path` in that order, with `tests_status` holding the
FAIL_TO_PASS/PASS_TO_PASS/FAIL_TO_FAIL/PASS_TO_FAIL success/failure lists. The test log wraps the test command's
output in SWE-smith's start/end markers, so `swesmith.harness.grading.read_test_output` reads it as its own.
Two cases SWE-smith leaves without a usable report get one that its tools still read (`resolved` is false): a
timed-out run (SWE-smith's `timed_out`/`timeout` keys) and a patch that does not apply (`patch_apply_error`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from swebench.harness.constants import KEY_MODEL, LOG_INSTANCE, LOG_REPORT, LOG_TEST_OUTPUT, TESTS_TIMEOUT
from swesmith.constants import KEY_TIMED_OUT, TEST_OUTPUT_END, TEST_OUTPUT_START

from oec.evaluation.errors import EvaluationError
from sweagent.utils.files import write_text_atomic

REPORT_FILE = LOG_REPORT
TEST_LOG_FILE = LOG_TEST_OUTPUT
INSTANCE_LOG_FILE = LOG_INSTANCE
PATCH_FILE = "patch.diff"
REVERTED_FILE = "reverted_changes.json"
"""Path → why the harness put the patch's change back (kept out of report.json, whose bytes are SWE-smith's)."""
PATCH_APPLY_ERROR = "patch_apply_error"

Outcome = Literal["graded", "empty_patch", "patch_failed", "timed_out", "no_test_output"]


def graded_report(tests_status: dict[str, dict[str, list[str]]], resolved: bool, model: str) -> dict[str, Any]:
    """A run whose tests ran to the end: SWE-smith's `get_eval_report` plus the model name, in its key order."""
    return {"patch_exists": True, "resolved": resolved, "tests_status": tests_status, KEY_MODEL: model}


def empty_patch_report(model: str) -> dict[str, Any]:
    """No patch to test: SWE-smith's report for a missing patch."""
    return {"patch_exists": False, "resolved": False, KEY_MODEL: model}


def timed_out_report(timeout_s: float, model: str) -> dict[str, Any]:
    """The test run was killed at the timeout: SWE-smith's keys, plus `patch_exists`/`resolved` for every reader."""
    timeout: float | int = int(timeout_s) if float(timeout_s).is_integer() else timeout_s  # SWE-smith's are ints
    return {"patch_exists": True, "resolved": False, KEY_TIMED_OUT: True, "timeout": timeout, KEY_MODEL: model}


def patch_failed_report(reason: str, model: str) -> dict[str, Any]:
    """The patch applies neither with `git apply` nor with `patch --fuzz`; `reason` is what the tools said."""
    return {"patch_exists": True, "resolved": False, PATCH_APPLY_ERROR: reason, KEY_MODEL: model}


def write_report(folder: Path, report: dict[str, Any]) -> None:
    """Write `report.json` atomically, byte for byte as SWE-smith does; it is written last, so it marks the run done."""
    write_text_atomic(folder / REPORT_FILE, json.dumps(report, indent=4))


def framed_test_log(mount: str, command: str, output: str, *, timed_out: bool, timeout_s: float) -> str:
    """The test output framed as SWE-smith's `eval.sh` (bash -x) prints it, including its timeout line."""
    body = output if output.endswith("\n") or not output else output + "\n"
    log = f"+ cd {mount}\n+ : '{TEST_OUTPUT_START}'\n+ {command}\n{body}"
    if timed_out:
        return f"{log}\n\n{TESTS_TIMEOUT}: {timeout_s:g} seconds exceeded"
    return f"{log}+ : '{TEST_OUTPUT_END}'\n"


@dataclass(frozen=True)
class ReportSummary:
    """What the run summary needs from one report."""

    resolved: bool
    outcome: Outcome
    tests_status: dict[str, Any] = field(default_factory=dict)
    """FAIL_TO_PASS/PASS_TO_PASS/... → {success: [...], failure: [...]} of a graded report (the inspector shows it)."""


def read_report(path: Path) -> ReportSummary:
    """Read a report written by this harness or by SWE-smith's (a timed-out SWE-smith report has no `resolved`)."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"{path}: cannot read the eval report ({exc})") from None
    if not isinstance(report, dict):
        raise EvaluationError(f"{path}: expected a JSON object (SWE-smith report format)")
    if "resolved" not in report and len(report) == 1 and isinstance(next(iter(report.values())), dict):
        report = next(iter(report.values()))  # SWE-bench's harness wraps the report as {instance_id: report}
    if report.get(KEY_TIMED_OUT) is True:
        return ReportSummary(False, "timed_out")
    resolved = report.get("resolved")
    if not isinstance(resolved, bool):
        raise EvaluationError(f"{path}: key 'resolved': expected true or false (SWE-smith report format)")
    if report.get("patch_exists") is False:
        return ReportSummary(resolved, "empty_patch")
    if PATCH_APPLY_ERROR in report:
        return ReportSummary(resolved, "patch_failed")
    if "tests_status" not in report:
        return ReportSummary(resolved, "no_test_output")
    tests_status = report["tests_status"]
    return ReportSummary(resolved, "graded", tests_status if isinstance(tests_status, dict) else {})
