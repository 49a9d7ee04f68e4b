"""eval_swesmith: predictions on the real demo instances are graded in the real sandbox into SWE-smith reports.

One batch (two workers) grades the reverse of the bug patch (the gold fix) of every addict instance and of one
instance per other repository, next to every kind of bad prediction: empty, not applying, needing fuzz, rewriting or
deleting tests, adding a conftest.py that forces passes, attacking the host, and naming an unknown instance (the
other ways a patch might change how tests are collected or reported are in test_grader_attacks.py). A second
small batch holds a patch that never terminates. The docker backend is checked on the command it builds and on the
collection of a SWE-smith output tree written here.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from swebench.harness.constants import TESTS_TIMEOUT

from oec.evaluation.cli import main
from oec.evaluation.docker_harness import collect_round, plan_rounds
from oec.evaluation.errors import EvaluationError
from oec.evaluation.patching import NOT_SOURCE, TEST_FILE, revert_rule
from oec.evaluation.plan import EvalJob
from oec.evaluation.run import EvalRun, evaluate_run
from sweagent.environment.task_repos.profiles import get_profile
from sweagent.environment.task_repos.tests_runner import grade, is_resolved, run_tests
from sweagent.environment.task_repos.workspace import apply_patch, build_workspace, git
from sweagent.instance import TaskInstance, load_instances
from sweagent.predictions import PREDS_FILE, Prediction, write_prediction
from sweagent.run.merge_preds import main as merge_preds_main
from sweagent.trajectory import Trajectory, TrajectoryInfo, traj_path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "config" / "demo" / "instances.json"
INSTANCES = load_instances(DEMO)
ADDICT_REPO = "swesmith/mewwts__addict.75284f95"
ADDICT = [instance for instance in INSTANCES if instance.repo == ADDICT_REPO]
ONE_PER_OTHER_REPO = [next(i for i in INSTANCES if i.repo == repo) for repo in sorted({i.repo for i in INSTANCES} - {ADDICT_REPO})]
SETDEFAULT = next(instance for instance in ADDICT if "self[key] = default" in instance.patch)
"""The addict bug that drops `self[key] = default` from `setdefault`; its fix has a context line to garble."""
OTHER = next(instance for instance in ADDICT if instance is not SETDEFAULT)


def reverse_patch(patch: str) -> str:
    """The fix for a bug: its patch with old and new sides swapped."""
    lines = []
    pending_old = None
    for line in patch.splitlines(keepends=True):
        if line.startswith("--- ") and pending_old is None:
            pending_old = line[4:]
        elif line.startswith("+++ ") and pending_old is not None:
            lines += [f"--- {line[4:]}", f"+++ {pending_old}"]
            pending_old = None
        elif hunk := re.match(r"@@ -(\S+) \+(\S+) @@(.*)", line, re.DOTALL):
            lines.append(f"@@ -{hunk[2]} +{hunk[1]} @@{hunk[3]}")
        elif line[:1] in "+-":
            lines.append({"+": "-", "-": "+"}[line[0]] + line[1:])
        else:
            lines.append(line)
    return "".join(lines)


def diff_after(instance: TaskInstance, edit: Callable[[Path], None], root: Path) -> str:
    """The patch a model would submit after `edit` on the instance's bug state (made with git, like the agent's)."""
    workspace = build_workspace(instance, Path(tempfile.mkdtemp(dir=root)) / "repo", hide_fail_to_pass_tests=False)
    edit(workspace.path)
    git(workspace.path, "add", "--all", "--force")
    return git(workspace.path, "diff", "--cached", "--binary", "HEAD").stdout


def append(path: str, text: str) -> Callable[[Path], None]:
    def edit(repo: Path) -> None:
        with (repo / path).open("a", encoding="utf-8") as handle:
            handle.write(text)

    return edit


def fix_and(instance: TaskInstance, edit: Callable[[Path], None]) -> Callable[[Path], None]:
    def both(repo: Path) -> None:
        apply_patch(repo, instance.patch, reverse=True)
        edit(repo)

    return both


def noop_failing_tests(instance: TaskInstance) -> str:
    """Test-file code that turns each FAIL_TO_PASS test into a no-op: a test edit that fakes a fix."""
    overrides = [test.split("::")[1:] for test in instance.FAIL_TO_PASS]
    return "\n" + "".join(f"{cls}.{method} = lambda self: None\n" for cls, method in overrides)


FORCE_PASS_CONFTEST = """import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().outcome = "passed"
"""


def hostile_code(canary: Path, port: int) -> str:
    """Module code that tries to delete and write host files and reach a host port, then reports what happened."""
    return f"""
import shutil as _shutil, socket as _socket
_attempts = []
try:
    _shutil.rmtree({str(canary)!r})
    _attempts.append("rmtree succeeded")
except OSError as _exc:
    _attempts.append(f"rmtree: {{_exc}}")
try:
    open({str(canary / "planted.txt")!r}, "w").close()
    _attempts.append("write succeeded")
except OSError as _exc:
    _attempts.append(f"write: {{_exc}}")
try:
    _socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    _attempts.append("connect succeeded")
except OSError as _exc:
    _attempts.append(f"connect: {{_exc}}")
raise RuntimeError("HOSTILE " + " | ".join(_attempts))
"""


def escaping_patch(canary: Path) -> str:
    """A patch whose file path climbs out of the repository to the canary folder."""
    target = "../" * 12 + str(canary / "escaped.txt").lstrip("/")
    return f"--- /dev/null\n+++ b/{target}\n@@ -0,0 +1 @@\n+escaped\n"


@dataclass
class Batch:
    run_dir: Path
    eval_dir: Path
    run: EvalRun
    canary: Path
    listener: socket.socket

    def report(self, traj_id: str) -> dict:
        return json.loads((self.eval_dir / traj_id / "report.json").read_text())

    def text(self, traj_id: str, name: str) -> str:
        return (self.eval_dir / traj_id / name).read_text()


def write_run(run_dir: Path, predictions: dict[str, Prediction], exit_statuses: dict[str, str]) -> None:
    for traj_id, prediction in predictions.items():
        write_prediction(run_dir / traj_id / f"{traj_id}.pred", prediction.model_copy(update={"traj_id": traj_id}))
    for traj_id, status in exit_statuses.items():
        Trajectory(info=TrajectoryInfo(exit_status=status)).save(traj_path(run_dir, traj_id))


def predict(instance_id: str, patch: str | None, model: str = "oec-test") -> Prediction:
    return Prediction(instance_id=instance_id, model_name_or_path=model, model_patch=patch)


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Batch]:
    root = tmp_path_factory.mktemp("eval")
    # A host folder outside the sandbox's view (the host's /tmp is replaced by the sandbox's own).
    canary = Path(tempfile.mkdtemp(prefix="oec-eval-canary-", dir="/var/tmp"))
    (canary / "keep.txt").write_text("host data")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    fixed_setdefault = reverse_patch(SETDEFAULT.patch)
    predictions = {
        **{f"gold__{instance.instance_id}": predict(instance.instance_id, reverse_patch(instance.patch), "gold")
           for instance in [*ADDICT, *ONE_PER_OTHER_REPO]},
        f"{OTHER.instance_id}__r0": predict(OTHER.instance_id, ""),
        f"{OTHER.instance_id}__r1": predict(OTHER.instance_id, None),
        "does_not_apply": predict(OTHER.instance_id, "--- a/addict/addict.py\n+++ b/addict/addict.py\n@@ -1,2 +1,2 @@\n-no such line\n+x\n context\n"),
        "needs_fuzz": predict(SETDEFAULT.instance_id, fixed_setdefault.replace("        if key in self:\n", "        if key in self.keys():\n")),
        "rewrites_tests": predict(OTHER.instance_id, diff_after(OTHER, append("test_addict.py", noop_failing_tests(OTHER)), root)),
        "adds_conftest": predict(OTHER.instance_id, diff_after(OTHER, lambda repo: (repo / "conftest.py").write_text(FORCE_PASS_CONFTEST), root)),
        "fixes_and_deletes_tests": predict(SETDEFAULT.instance_id, diff_after(SETDEFAULT, fix_and(SETDEFAULT, lambda repo: (repo / "test_addict.py").unlink()), root)),
        "attacks_host": predict(OTHER.instance_id, diff_after(OTHER, append("addict/addict.py", hostile_code(canary, port)), root)),
        "escapes_repo": predict(OTHER.instance_id, escaping_patch(canary)),
        "unknown_instance": predict("nobody__nothing.0__func_pm_x__00000000", fixed_setdefault),
    }
    run_dir = root / "run"
    write_run(run_dir, predictions, {f"gold__{ADDICT[0].instance_id}": "submitted", f"{OTHER.instance_id}__r0": "exit_cost"})
    try:
        run = evaluate_run(run_dir, instances_file=DEMO, workers=2)
        yield Batch(run_dir, run_dir / "eval", run, canary, listener)
    finally:
        listener.close()
        shutil.rmtree(canary, ignore_errors=True)


@pytest.mark.slow
def test_the_reverse_of_each_bug_patch_is_resolved(batch: Batch) -> None:
    for instance in [*ADDICT, *ONE_PER_OTHER_REPO]:
        report = batch.report(f"gold__{instance.instance_id}")
        assert report["resolved"] is True and report["patch_exists"] is True, instance.instance_id
        assert report["tests_status"]["FAIL_TO_PASS"] == {"success": instance.FAIL_TO_PASS, "failure": []}
        assert len(report["tests_status"]["PASS_TO_PASS"]["success"]) == len(instance.PASS_TO_PASS)
        assert "+ : '>>>>> End Test Output'" in batch.text(f"gold__{instance.instance_id}", "test_output.txt")


@pytest.mark.slow
def test_an_empty_patch_is_unresolved_without_running_tests(batch: Batch) -> None:
    for traj_id in (f"{OTHER.instance_id}__r0", f"{OTHER.instance_id}__r1"):
        assert batch.report(traj_id) == {"patch_exists": False, "resolved": False, "model_name_or_path": "oec-test"}
        assert not (batch.eval_dir / traj_id / "test_output.txt").exists()


@pytest.mark.slow
def test_a_patch_that_does_not_apply_is_reported_with_the_reason(batch: Batch) -> None:
    report = batch.report("does_not_apply")
    assert report["patch_exists"] is True and report["resolved"] is False
    assert "git apply:" in report["patch_apply_error"] and "patch --fuzz:" in report["patch_apply_error"]
    assert "addict/addict.py" in report["patch_apply_error"]
    assert ">>>>> Patch Apply Failed" in batch.text("does_not_apply", "run_instance.log")


@pytest.mark.slow
def test_a_patch_with_stale_context_applies_with_fuzz(batch: Batch) -> None:
    assert batch.report("needs_fuzz")["resolved"] is True
    assert "Applied Patch (patch --fuzz)" in batch.text("needs_fuzz", "run_instance.log")


@pytest.mark.slow
def test_changes_to_tests_are_reverted_before_the_tests_run(batch: Batch) -> None:
    assert batch.report("rewrites_tests")["resolved"] is False
    assert "Reverted changes outside the source files:\n  test_addict.py: test file\n" in batch.text("rewrites_tests", "run_instance.log")
    assert batch.report("adds_conftest")["resolved"] is False
    assert "\n  conftest.py: test file\n" in batch.text("adds_conftest", "run_instance.log")
    assert json.loads(batch.text("adds_conftest", "reverted_changes.json")) == {"conftest.py": "test file"}
    # The fix with the test file deleted: the file comes back and its tests run and pass.
    deleted = batch.report("fixes_and_deletes_tests")
    assert deleted["resolved"] is True and deleted["tests_status"]["FAIL_TO_PASS"]["failure"] == []


@pytest.mark.slow
def test_the_test_cheats_would_pass_if_they_were_not_reverted(batch: Batch, tmp_path: Path) -> None:
    """Guards the test above: both cheats really make the tests pass when their changes stay in place."""
    profile = get_profile(OTHER.repo)
    for name in ("rewrites_tests", "adds_conftest"):
        workspace = build_workspace(OTHER, tmp_path / name, hide_fail_to_pass_tests=False)
        apply_patch(workspace.path, (batch.eval_dir / name / "patch.diff").read_text())
        suite = run_tests(workspace.path, profile, test_files=["test_addict.py"])
        assert is_resolved(grade(OTHER, suite.statuses)), name


@pytest.mark.slow
def test_the_sandbox_stops_a_patch_that_attacks_the_host(batch: Batch) -> None:
    log = batch.text("attacks_host", "test_output.txt")
    assert f"HOSTILE rmtree: [Errno 2] No such file or directory: '{batch.canary}'" in log
    assert "write: [Errno 2] No such file or directory" in log
    assert "connect: [Errno 111] Connection refused" in log
    assert batch.report("attacks_host")["resolved"] is False
    assert (batch.canary / "keep.txt").read_text() == "host data" and not (batch.canary / "planted.txt").exists()
    with pytest.raises(BlockingIOError):
        batch.listener.accept()
    escaped = batch.report("escapes_repo")
    assert escaped["resolved"] is False and "escaped.txt" in escaped["patch_apply_error"]
    assert not (batch.canary / "escaped.txt").exists()


@pytest.mark.slow
def test_the_summary_counts_by_exit_status_repository_and_rollout(batch: Batch) -> None:
    summary = json.loads((batch.eval_dir / "summary.json").read_text())
    gold = [*ADDICT, *ONE_PER_OTHER_REPO]
    resolved = {f"gold__{instance.instance_id}" for instance in gold} | {"needs_fuzz", "fixes_and_deletes_tests"}
    assert list(summary)[:5] == ["resolved", "unresolved", "total", "ids_resolved", "ids_unresolved"]
    assert set(summary["ids_resolved"]) == resolved and summary["resolved"] == len(resolved)
    assert summary["total"] == len(gold) + 10 and summary["unresolved"] == 7
    assert summary["outcomes"] == {"empty_patch": 2, "graded": len(gold) + 5, "patch_failed": 2, "skipped": 1}
    assert summary["skipped"] == {"unknown_instance": f"instance 'nobody__nothing.0__func_pm_x__00000000' is not in {DEMO}"}
    assert summary["errors"] == {}
    assert summary["by_exit_status"]["submitted"] == {"resolved": 1, "total": 1}
    assert summary["by_exit_status"]["exit_cost"] == {"resolved": 0, "total": 1}
    assert summary["by_rollout"] == {"r0": {"resolved": 0, "total": 1}, "r1": {"resolved": 0, "total": 1},
                                     "single": {"resolved": len(resolved), "total": len(gold) + 8}}
    for instance in ONE_PER_OTHER_REPO:
        assert summary["by_repo"][instance.repo] == {"resolved": 1, "total": 1}
    assert summary["by_repo"][ADDICT_REPO]["total"] == len(ADDICT) + 9
    assert json.loads((batch.run_dir / PREDS_FILE).read_text()).keys() == {
        traj_id.name for traj_id in batch.run_dir.iterdir() if traj_id.is_dir() and traj_id.name != "eval"
    }


@pytest.mark.slow
def test_reports_are_byte_identical_to_what_swesmith_writes(batch: Batch, monkeypatch: pytest.MonkeyPatch) -> None:
    """SWE-smith's own grading of our test log, given a SWE-smith profile for addict, yields our report's bytes."""
    from swesmith.harness.grading import get_eval_report
    from swesmith.profiles import registry
    from swesmith.profiles.python import PythonProfile

    @dataclass
    class AddictProfile(PythonProfile):
        owner: str = "mewwts"
        repo: str = "addict"
        commit: str = "75284f9593dfb929cadd900aff9e35e7c7aec54b"

        def log_parser(self, log: str) -> dict[str, str]:
            return get_profile(ADDICT_REPO).parse_log(log)

    monkeypatch.setitem(registry.data, ADDICT_REPO, AddictProfile)
    gold = ADDICT[0]
    cases = ((f"gold__{gold.instance_id}", gold, "diff"), ("rewrites_tests", OTHER, "diff"), (f"{OTHER.instance_id}__r1", OTHER, None))
    for traj_id, instance, patch in cases:
        test_log = batch.eval_dir / traj_id / "test_output.txt"
        pred = {"instance_id": instance.instance_id, "model_patch": patch, "model_name_or_path": batch.report(traj_id)["model_name_or_path"]}
        report = get_eval_report(pred, instance.model_dump(), str(test_log))
        report["model_name_or_path"] = pred["model_name_or_path"]
        assert (batch.eval_dir / traj_id / "report.json").read_bytes() == json.dumps(report, indent=4).encode(), traj_id
    # A patch that does not apply: SWE-smith's fields, plus the reason.
    failed = batch.report("does_not_apply")
    assert {key: failed[key] for key in ("patch_exists", "resolved")} == {"patch_exists": True, "resolved": False}


@pytest.mark.slow
def test_a_rerun_grades_only_what_has_no_report(batch: Batch) -> None:
    report_file = batch.eval_dir / f"gold__{ADDICT[1].instance_id}" / "report.json"
    kept = batch.eval_dir / f"gold__{ADDICT[2].instance_id}" / "report.json"
    kept_mtime = kept.stat().st_mtime_ns
    report_file.unlink()
    rerun = evaluate_run(batch.run_dir, instances_file=DEMO, workers=2)
    assert [result.traj_id for result in rerun.graded] == [f"gold__{ADDICT[1].instance_id}"]
    assert json.loads(report_file.read_text())["resolved"] is True
    assert kept.stat().st_mtime_ns == kept_mtime
    assert rerun.summary == batch.run.summary


@pytest.mark.slow
def test_a_patch_that_never_finishes_is_killed_at_the_timeout_and_the_batch_goes_on(tmp_path: Path) -> None:
    loop = diff_after(OTHER, append("addict/addict.py", "\nimport time\nwhile True:\n    time.sleep(0.1)\n"), tmp_path)
    run_dir = tmp_path / "run"
    write_run(run_dir, {"loops": predict(OTHER.instance_id, loop), "fixes": predict(OTHER.instance_id, reverse_patch(OTHER.patch))}, {})
    run = evaluate_run(run_dir, instances_file=DEMO, workers=2, timeout_s=8)
    timings = {result.traj_id: result for result in run.graded}
    assert timings["loops"].outcome == "timed_out" and 8 <= timings["loops"].tests_duration_s < 20
    report = json.loads((run.eval_dir / "loops" / "report.json").read_text())
    assert report == {"patch_exists": True, "resolved": False, "timed_out": True, "timeout": 8, "model_name_or_path": "oec-test"}
    assert (run.eval_dir / "loops" / "test_output.txt").read_text().endswith(f"{TESTS_TIMEOUT}: 8 seconds exceeded")
    assert run.summary["ids_resolved"] == ["fixes"] and run.summary["outcomes"] == {"graded": 1, "timed_out": 1}


def test_only_source_files_keep_their_changes() -> None:
    """Test files (graded ones, the profile's test paths, pytest's conventions), anything outside the source paths
    and, inside them, files that steer Python or pytest are reverted; the rest of the source stays patched."""
    toolz = next(instance for instance in INSTANCES if instance.repo == "oec/pytoolz__toolz.2c86e3d9")
    reason = revert_rule(toolz, get_profile(toolz.repo))
    outside = "outside the source paths (toolz, tlz)"
    expected = {
        "toolz/tests/test_itertoolz.py": TEST_FILE, "toolz/tests/helpers.py": TEST_FILE, "toolz/conftest.py": TEST_FILE,
        "pkg/conftest.py": TEST_FILE, "test_x.py": TEST_FILE, "toolz/x_test.py": TEST_FILE, "tests/data.txt": TEST_FILE,
        "pytest.ini": outside, "setup.py": outside, "README.rst": outside, "pytest.py": outside, "_pytest/__init__.py": outside,
        "sitecustomize.py": outside, "x.pth": outside, "toolz.egg-info/entry_points.txt": outside, "toolzy/a.py": outside,
        "toolz/pyproject.toml": NOT_SOURCE, "toolz/setup.cfg": NOT_SOURCE, "toolz/tox.ini": NOT_SOURCE,
        "toolz/pytest.ini": NOT_SOURCE, "toolz/.pytest.ini": NOT_SOURCE, "toolz/sitecustomize.py": NOT_SOURCE,
        "tlz/usercustomize.py": NOT_SOURCE, "toolz/a.pth": NOT_SOURCE, "toolz/__pycache__/itertoolz.cpython-311.pyc": NOT_SOURCE,
        "toolz/itertoolz.cpython-311-x86_64-linux-gnu.so": NOT_SOURCE, "toolz/x.dist-info/entry_points.txt": NOT_SOURCE,
        "toolz/itertoolz.py": None, "toolz/testing_utils_not_a_dir.py": None, "tlz/__init__.py": None,
        "toolz/curried/__init__.py": None, "toolz/data.json": None,
    }
    assert {path: reason(path) for path in expected} == expected


def _swesmith_eval_flags() -> set[str]:
    """The option strings `python -m swesmith.harness.eval` accepts, read from its argparse calls."""
    source = Path(importlib.util.find_spec("swesmith.harness.eval").origin).read_text()
    flags = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            flags |= {arg.value for arg in node.args if isinstance(arg, ast.Constant) and str(arg.value).startswith("-")}
    return flags


def test_docker_backend_runs_swesmith_once_per_rollout_round_with_its_real_flags(tmp_path: Path) -> None:
    instances_file = tmp_path / "tasks.json"
    shutil.copy(DEMO, instances_file)
    jobs = [EvalJob(predict(i.instance_id, f"patch {k}").model_copy(update={"traj_id": f"{i.instance_id}__r{k}"}), i)
            for i in INSTANCES[:2] for k in (0, 1)]
    rounds = plan_rounds(jobs, instances_file, tmp_path / "eval", run_id="oec.run1", workers=8, python="python")
    assert [round_.run_id for round_ in rounds] == ["oec.run1.round0", "oec.run1.round1"]
    for k, round_ in enumerate(rounds):
        preds_file = tmp_path / "eval" / ".swesmith" / f"preds.oec.run1.round{k}.json"
        assert round_.argv == ["python", "-m", "oec.evaluation.swesmith_eval", "--dataset_path", str(instances_file),
                               "--predictions_path", str(preds_file), "--run_id", f"oec.run1.round{k}", "--workers", "8"]
        assert round_.cwd == tmp_path / "eval" / ".swesmith"
        assert json.loads(preds_file.read_text()) == {
            i.instance_id: {"instance_id": i.instance_id, "model_name_or_path": "oec-test", "model_patch": f"patch {k}"}
            for i in INSTANCES[:2]
        }
        assert round_.traj_ids == {i.instance_id: f"{i.instance_id}__r{k}" for i in INSTANCES[:2]}
    assert {arg for arg in rounds[0].argv if arg.startswith("--")} <= _swesmith_eval_flags()
    single = plan_rounds(jobs[:1], instances_file, tmp_path / "eval", run_id="oec.run1", workers=1)
    assert [round_.run_id for round_ in single] == ["oec.run1"]
    with pytest.raises(EvaluationError, match=r"tasks\.yaml: SWE-smith's harness reads only \.json or \.jsonl"):
        plan_rounds(jobs, tmp_path / "tasks.yaml", tmp_path / "eval", run_id="x", workers=1)


def test_docker_backend_collects_swesmith_output_into_the_eval_layout(tmp_path: Path) -> None:
    instance = INSTANCES[0]
    job = EvalJob(predict(instance.instance_id, "p").model_copy(update={"traj_id": f"{instance.instance_id}__r3"}), instance)
    missing = EvalJob(predict(INSTANCES[1].instance_id, "p"), INSTANCES[1])
    eval_dir = tmp_path / "eval"
    (round_,) = plan_rounds([job, missing], DEMO, eval_dir, run_id="r", workers=1)
    # What swesmith.harness.eval leaves behind: logs/run_evaluation/<run_id>/<instance_id>/...
    produced = eval_dir / ".swesmith" / "logs" / "run_evaluation" / "r" / instance.instance_id
    produced.mkdir(parents=True)
    report = json.dumps({"patch_exists": True, "resolved": True, "tests_status": {}, "model_name_or_path": "m"}, indent=4)
    files = {"report.json": report, "test_output.txt": "+ : '>>>>> Start Test Output'\n", "run_instance.log": "log\n", "patch.diff": "p"}
    for name, text in files.items():
        (produced / name).write_text(text)
    errors = collect_round(round_, eval_dir)
    for name, text in files.items():
        assert (eval_dir / f"{instance.instance_id}__r3" / name).read_text() == text
    assert errors == {INSTANCES[1].instance_id: f"SWE-smith wrote no report.json for {INSTANCES[1].instance_id} "
                      f"(see {round_.output_dir(INSTANCES[1].instance_id) / 'run_instance.log'})"}


def test_bad_input_is_one_line_naming_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cases = [
        ([str(tmp_path / "absent")], f"{tmp_path / 'absent'}: run directory does not exist"),
        ([str(run_dir)], f"{run_dir}: no preds.json and no readable <traj_id>/<traj_id>.pred files"),
        ([str(run_dir), "--workers", "0"], "command line: key 'num_workers': Input should be greater than or equal to 1"),
        ([str(run_dir), "--backend", "docker", "--timeout", "5"], "--timeout: only the local backend takes it"),
        ([str(run_dir), "--run_id", "x"], "--run_id: only the docker backend takes it"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"eval_swesmith.sh: error: {message}") and err.count("\n") == 1, err
    write_run(run_dir, {"a": predict(INSTANCES[0].instance_id, "")}, {})
    (tmp_path / "bad.json").write_text("{not json")
    assert main([str(run_dir), "--instances", str(tmp_path / "bad.json")]) == 2
    assert capsys.readouterr().err.startswith(f"eval_swesmith.sh: error: {tmp_path / 'bad.json'}: not valid JSON")


def test_an_instance_the_harness_cannot_build_is_reported_and_retried_while_the_batch_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = ADDICT[0].model_copy(update={"instance_id": "mewwts__addict.75284f95.broken__00000000", "patch": "--- a/nope.py\n+++ b/nope.py\n@@ -1 +1 @@\n-a\n+b\n"})
    instances_file = tmp_path / "tasks.json"
    instances_file.write_text(json.dumps([ADDICT[0].model_dump(), broken.model_dump()]))
    run_dir = tmp_path / "run"
    write_run(run_dir, {"broken": predict(broken.instance_id, "x"), "empty": predict(ADDICT[0].instance_id, "")}, {})
    assert main([str(run_dir), "--instances", str(instances_file), "--workers", "2"]) == 1
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    assert summary["outcomes"] == {"empty_patch": 1, "error": 1}
    assert "instance mewwts__addict.75284f95.broken__00000000: key 'patch' does not apply" in summary["errors"]["broken"]
    assert not (run_dir / "eval" / "broken" / "report.json").exists()
    assert "not graded (retried on the next run) broken: WorkspaceError" in capsys.readouterr().out.replace("\n", " ")


def test_the_script_runs_from_any_directory(tmp_path: Path) -> None:
    result = subprocess.run([str(REPO / "eval_swesmith.sh"), "--help"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert result.stdout.startswith("usage: eval_swesmith.sh") and "--backend {local,docker}" in result.stdout


def test_a_stale_preds_json_is_rebuilt_from_the_pred_files_with_a_warning(tmp_path: Path) -> None:
    """preds.json older than a .pred, or holding other traj ids, is rebuilt (the warning names what changed); an
    unreadable .pred is skipped and named on one line; a current preds.json is left alone."""
    run_dir = tmp_path / "run"
    iid = INSTANCES[0].instance_id
    write_run(run_dir, {"a": predict(iid, ""), "b": predict(iid, "")}, {})
    preds_file = run_dir / PREDS_FILE
    earlier = {"a": {"instance_id": iid, "model_name_or_path": "older", "model_patch": "", "traj_id": "a"},
               "gone": {"instance_id": iid, "model_name_or_path": "oec-test", "model_patch": "", "traj_id": "gone"}}
    preds_file.write_text(json.dumps(earlier))
    oldest = min(path.stat().st_mtime_ns for path in run_dir.glob("*/*.pred"))
    os.utime(preds_file, ns=(oldest - 10**9, oldest - 10**9))
    bad = run_dir / "bad" / "bad.pred"
    bad.parent.mkdir()
    bad.write_text("{not json")

    def evaluate() -> tuple[EvalRun, list[str]]:
        console = Console(file=io.StringIO(), width=1000)
        run = evaluate_run(run_dir, instances_file=DEMO, console=console)
        return run, [line for line in console.file.getvalue().splitlines() if "warning:" in line]

    run, warnings = evaluate()
    assert warnings == [
        f"[eval_swesmith] warning: {preds_file} is older than some of its .pred files: rebuilt it from them "
        "(1 added (b), 1 removed (gone), 1 changed (a))",
        f"[eval_swesmith] warning: skipped 1 unreadable .pred file(s): {bad}: cannot read prediction "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
    ]
    assert json.loads(preds_file.read_text()).keys() == {"a", "b"}
    assert run.summary["total"] == 2 and run.summary["outcomes"] == {"empty_patch": 2}
    rebuilt_at = preds_file.stat().st_mtime_ns
    _, warnings = evaluate()
    assert [line for line in warnings if "preds.json" in line] == [] and preds_file.stat().st_mtime_ns == rebuilt_at
    shutil.rmtree(run_dir / "b")
    _, warnings = evaluate()
    assert warnings[0] == (f"[eval_swesmith] warning: {preds_file} holds other traj ids than its .pred files: "
                           "rebuilt it from them (1 removed (b))")
    # A run that has only a preds.json (made by another tool) is graded from it as it is.
    only = tmp_path / "only"
    only.mkdir()
    (only / PREDS_FILE).write_text(json.dumps(earlier))
    run = evaluate_run(only, instances_file=DEMO, console=Console(file=io.StringIO()))
    assert run.summary["total"] == 2 and json.loads((only / PREDS_FILE).read_text()) == earlier


def test_merge_preds_skips_unreadable_pred_files_and_says_so_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    write_run(run_dir, {"a": predict(INSTANCES[0].instance_id, "diff")}, {})
    (run_dir / "listed").mkdir()
    (run_dir / "listed" / "listed.pred").write_text("[1, 2]")
    (run_dir / "binary").mkdir()
    (run_dir / "binary" / "binary.pred").write_bytes(b"\xff\xfe\x00")
    assert merge_preds_main([str(run_dir)]) == 0
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("sweagent merge-preds: skipped 2 unreadable .pred file(s): "), err
    assert f"{run_dir / 'binary' / 'binary.pred'}: cannot read prediction (" in err
    assert f"{run_dir / 'listed' / 'listed.pred'}: key '(top level)': " in err
    assert out == f"merged 1 predictions into {run_dir / PREDS_FILE}\n"
    assert json.loads((run_dir / PREDS_FILE).read_text()).keys() == {"a"}
