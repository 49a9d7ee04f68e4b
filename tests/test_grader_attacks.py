"""The grader cannot be fooled: a patch that leaves the bug in place but changes how pytest collects or reports the
tests is graded unresolved, on real demo instances, by the real local harness in the real sandbox.

One cheat per way in: pytest configuration in each file pytest reads it from, a plugin registered through an entry
point, an interpreter start-up hook, a module that shadows pytest, _pytest or pluggy, configuration that swaps the
code under test, a conftest.py deep in the tree and bytecode beside the source. Each cheat is first shown to work
with the test command the harness used to run (so the test would notice a defence going missing), then shown to
fail against each defence: the test run's own settings alone (where they can stop it), and the whole harness, which
also reverts every change outside the source files and records what it reverted. The true fix stays resolved, also
next to harmless extra changes and next to changes that would sabotage the tests. All predictions are graded in one
harness run with two workers.
"""

from __future__ import annotations

import importlib.util
import io
import json
import py_compile
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from test_evaluation import (
    DEMO,
    FORCE_PASS_CONFTEST,
    INSTANCES,
    OTHER,
    SETDEFAULT,
    diff_after,
    fix_and,
    predict,
    reverse_patch,
    write_run,
)

from oec.evaluation.patching import NOT_SOURCE, TEST_FILE
from oec.evaluation.run import evaluate_run
from sweagent.environment.task_repos.profiles import files_of_tests, get_profile
from sweagent.environment.sandbox.bwrap import run_sandboxed
from sweagent.environment.task_repos.test_venv import sandbox_env, venv_binds
from sweagent.environment.task_repos.tests_runner import grade, is_resolved, run_tests
from sweagent.environment.task_repos.workspace import apply_patch, build_workspace
from sweagent.instance import TaskInstance

TOOLZ = next(instance for instance in INSTANCES if instance.repo == "oec/pytoolz__toolz.2c86e3d9")
BOLTONS = next(instance for instance in INSTANCES if instance.repo == "swesmith/mahmoud__boltons.3bfcfdd0")
PLUGIN = "oec_force_pass"
"""A top-level module holding FORCE_PASS_CONFTEST's hook: every test reported as passed."""
OUTSIDE_ADDICT = "outside the source paths (addict)"
# How the harness ran the tests before it took the configuration into its own hands: the repository's pytest
# settings, plugin discovery, and the workspace on PYTHONPATH and as the working directory on sys.path.
NAIVE_COMMAND = "python -m pytest -rA --tb=short --color=no -p no:cacheprovider"


def write_files(files: dict[str, str]) -> Callable[[Path], None]:
    """An edit that writes `files` (path → text; a text starting with `+` is appended to the existing file)."""

    def edit(repo: Path) -> None:
        for path, text in files.items():
            target = repo / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if text.startswith("+"):
                target.write_text(target.read_text(encoding="utf-8") + text[1:], encoding="utf-8")
            else:
                target.write_text(text, encoding="utf-8")

    return edit


def fake_pytest(instance: TaskInstance) -> str:
    """A module that, once imported or run in pytest's place, prints a pass for every graded test and exits."""
    tests = sorted(instance.FAIL_TO_PASS + instance.PASS_TO_PASS)
    return f"import os, sys\nfor _test in {tests!r}:\n    print('PASSED ' + _test)\nsys.stdout.flush()\nos._exit(0)\n"


def shadow_fixed_copy(repo: Path) -> None:
    """A fixed copy of the addict package under shadow/ (the real one keeps the bug), for `pythonpath` to prefer."""
    apply_patch(repo, OTHER.patch, reverse=True)
    shutil.copytree(repo / "addict", repo / "shadow" / "addict")
    apply_patch(repo, OTHER.patch)


def fixed_bytecode(repo: Path) -> None:
    """addict.py's bytecode compiled from the fixed source and never checked against it; the source keeps the bug."""
    source = repo / "addict" / "addict.py"
    apply_patch(repo, OTHER.patch, reverse=True)
    py_compile.compile(str(source), importlib.util.cache_from_source(str(source)),
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH, doraise=True)
    apply_patch(repo, OTHER.patch)


# The shadow folder goes first on sys.path, and `append` keeps pytest from putting the test's folder before it.
PYTHONPATH_SHADOW = '[tool.pytest.ini_options]\npythonpath = ["shadow"]\naddopts = "--import-mode=append"\n'


@dataclass(frozen=True)
class Cheat:
    instance: TaskInstance
    edit: Callable[[Path], None]
    reverted: dict[str, str]
    """What the harness must record as reverted: path → reason."""
    needs_revert: bool = False
    """Only reverting stops it: pytest loads conftest.py files and Python loads bytecode whatever the settings."""


def plugin_in(config_file: str, text: str, plugin_file: str = f"{PLUGIN}.py") -> dict[str, str]:
    return {config_file: text, plugin_file: FORCE_PASS_CONFTEST}


CHEATS: dict[str, Cheat] = {
    "pyproject_toml_addopts": Cheat(
        OTHER, write_files(plugin_in("pyproject.toml", f'[tool.pytest.ini_options]\naddopts = "-p {PLUGIN}"\n')),
        {"pyproject.toml": OUTSIDE_ADDICT, f"{PLUGIN}.py": OUTSIDE_ADDICT},
    ),
    "setup_cfg_addopts": Cheat(
        OTHER, write_files(plugin_in("setup.cfg", f"+\n[tool:pytest]\naddopts = -p {PLUGIN}\n")),
        {"setup.cfg": OUTSIDE_ADDICT, f"{PLUGIN}.py": OUTSIDE_ADDICT},
    ),
    "tox_ini_addopts": Cheat(
        OTHER, write_files(plugin_in("tox.ini", f"[pytest]\naddopts = -p {PLUGIN}\n")),
        {"tox.ini": OUTSIDE_ADDICT, f"{PLUGIN}.py": OUTSIDE_ADDICT},
    ),
    "dot_pytest_ini_loads_a_plugin_from_the_source_package": Cheat(
        OTHER, write_files(plugin_in(".pytest.ini", "[pytest]\naddopts = -p addict.force_pass\n", "addict/force_pass.py")),
        {".pytest.ini": OUTSIDE_ADDICT},
    ),
    "dist_info_entry_point": Cheat(
        OTHER,
        write_files({
            "oec_cheat-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: oec-cheat\nVersion: 1.0\n",
            "oec_cheat-1.0.dist-info/entry_points.txt": f"[pytest11]\ncheat = {PLUGIN}\n",
            f"{PLUGIN}.py": FORCE_PASS_CONFTEST,
        }),
        {"oec_cheat-1.0.dist-info/METADATA": OUTSIDE_ADDICT, "oec_cheat-1.0.dist-info/entry_points.txt": OUTSIDE_ADDICT,
         f"{PLUGIN}.py": OUTSIDE_ADDICT},
    ),
    "egg_info_entry_point_to_the_source_package": Cheat(
        OTHER,
        write_files({"addict.egg-info/entry_points.txt": "[pytest11]\ncheat = addict.force_pass\n",
                     "addict/force_pass.py": FORCE_PASS_CONFTEST}),
        {"addict.egg-info/entry_points.txt": OUTSIDE_ADDICT},
    ),
    "sitecustomize_sets_pytest_addopts": Cheat(
        OTHER,
        write_files(plugin_in("sitecustomize.py", f"import os\nos.environ['PYTEST_ADDOPTS'] = '-p {PLUGIN}'\n")),
        {"sitecustomize.py": OUTSIDE_ADDICT, f"{PLUGIN}.py": OUTSIDE_ADDICT},
    ),
    "pytest_module_shadows_pytest": Cheat(OTHER, write_files({"pytest.py": fake_pytest(OTHER)}), {"pytest.py": OUTSIDE_ADDICT}),
    "underscore_pytest_package_shadows_pytest_internals": Cheat(
        OTHER, write_files({"_pytest/__init__.py": fake_pytest(OTHER)}), {"_pytest/__init__.py": OUTSIDE_ADDICT},
    ),
    "pluggy_module_shadows_pluggy": Cheat(OTHER, write_files({"pluggy.py": fake_pytest(OTHER)}), {"pluggy.py": OUTSIDE_ADDICT}),
    "pythonpath_setting_swaps_the_code_under_test": Cheat(
        OTHER,
        lambda repo: (shadow_fixed_copy(repo),
                      write_files({"pyproject.toml": PYTHONPATH_SHADOW})(repo)),
        {"pyproject.toml": OUTSIDE_ADDICT, "shadow/addict/__init__.py": OUTSIDE_ADDICT, "shadow/addict/addict.py": OUTSIDE_ADDICT},
    ),
    "conftest_inside_the_source_package": Cheat(
        TOOLZ, write_files({"toolz/conftest.py": FORCE_PASS_CONFTEST}), {"toolz/conftest.py": TEST_FILE}, needs_revert=True,
    ),
    "bytecode_beside_the_source": Cheat(
        OTHER, fixed_bytecode, {"addict/__pycache__/addict.cpython-311.pyc": NOT_SOURCE}, needs_revert=True,
    ),
}
# Start-up hooks Python does not even run for this test venv (a venv turns the user site off, and .pth files count
# only in site directories): removed all the same, since another interpreter setup would run them.
HOOK = f"import os; os.environ['PYTEST_ADDOPTS'] = '-p {PLUGIN}'\n"
INERT_HOOKS = {
    "usercustomize.py": (HOOK, OUTSIDE_ADDICT),
    "oec_cheat.pth": (HOOK, OUTSIDE_ADDICT),
    "addict/oec_cheat.pth": (HOOK, NOT_SOURCE),
    "addict/sitecustomize.py": (HOOK, NOT_SOURCE),
}
# The true fix next to extra changes: harmless ones, and ones that would break the run if they stayed.
SABOTAGE_CONFTEST = """import pytest
from rich.console import Console


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().outcome = "failed"
"""
FIXES: dict[str, tuple[TaskInstance, dict[str, str], dict[str, str]]] = {
    "fix_with_harmless_extras": (
        OTHER,
        {"README.md": "+\nFixed.\n", "docs/notes.md": "notes\n", "setup.py": "+\n# touched\n",
         "tests_extra/test_new.py": "def test_new():\n    pass\n", "addict/__init__.py": "+\n# a comment in the source\n"},
        {"README.md": OUTSIDE_ADDICT, "docs/notes.md": OUTSIDE_ADDICT, "setup.py": OUTSIDE_ADDICT,
         "tests_extra/test_new.py": TEST_FILE},
    ),
    "fix_with_sabotage": (
        SETDEFAULT,
        {"conftest.py": SABOTAGE_CONFTEST, "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-p no:python"\n',
         "pytest.py": "raise SystemExit(3)\n"},
        {"conftest.py": TEST_FILE, "pyproject.toml": OUTSIDE_ADDICT, "pytest.py": OUTSIDE_ADDICT},
    ),
    "toolz_fix_with_a_new_test_and_configuration": (
        TOOLZ,
        {"toolz/tests/test_extra.py": "def test_extra():\n    assert False\n", "setup.cfg": "+\n[tool:pytest]\naddopts = -x\n"},
        {"toolz/tests/test_extra.py": TEST_FILE, "setup.cfg": "outside the source paths (toolz, tlz)"},
    ),
    "boltons_fix": (BOLTONS, {}, {}),
}


@dataclass
class Graded:
    eval_dir: Path
    patches: dict[str, str]

    def report(self, traj_id: str) -> dict:
        return json.loads((self.eval_dir / traj_id / "report.json").read_text())

    def reverted(self, traj_id: str) -> dict[str, str]:
        return json.loads((self.eval_dir / traj_id / "reverted_changes.json").read_text())


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Graded]:
    """Every cheat, inert hook and fix of this module graded in one harness run."""
    root = tmp_path_factory.mktemp("attacks")
    patches = {name: diff_after(cheat.instance, cheat.edit, root) for name, cheat in CHEATS.items()}
    patches["inert_start_up_hooks"] = diff_after(OTHER, write_files({path: text for path, (text, _) in INERT_HOOKS.items()}), root)
    for name, (instance, extras, _) in FIXES.items():
        patches[name] = diff_after(instance, fix_and(instance, write_files(extras)), root)
    instance_of = {**{name: cheat.instance for name, cheat in CHEATS.items()}, "inert_start_up_hooks": OTHER,
                   **{name: instance for name, (instance, _, _) in FIXES.items()}}
    write_run(root / "run", {name: predict(instance_of[name].instance_id, patch) for name, patch in patches.items()}, {})
    console = Console(file=io.StringIO(), width=200)
    run = evaluate_run(root / "run", instances_file=DEMO, workers=2, console=console)
    assert run.summary["errors"] == {} and run.summary["total"] == len(patches), console.file.getvalue()
    yield Graded(run.eval_dir, patches)


def naive_run(workspace: Path, instance: TaskInstance) -> bool:
    """Whether the instance counts as resolved when its tests run the way the harness used to run them."""
    profile = get_profile(instance.repo)
    command = f"{NAIVE_COMMAND} {' '.join(files_of_tests(instance.FAIL_TO_PASS + instance.PASS_TO_PASS))}"
    result = run_sandboxed(command, workspace, timeout=120, env=sandbox_env(profile), ro_binds=venv_binds(profile))
    return is_resolved(grade(instance, profile.parse_log(result.output)))


@pytest.mark.slow
@pytest.mark.parametrize("name", CHEATS)
def test_each_cheat_works_without_the_defences_and_the_test_run_alone_ignores_it(
    name: str, graded: Graded, tmp_path: Path
) -> None:
    cheat = CHEATS[name]
    workspace = build_workspace(cheat.instance, tmp_path / "repo", hide_fail_to_pass_tests=False)
    apply_patch(workspace.path, graded.patches[name])
    assert naive_run(workspace.path, cheat.instance), f"{name} does not fool the old test command: not a cheat"
    if not cheat.needs_revert:
        files = files_of_tests(cheat.instance.FAIL_TO_PASS + cheat.instance.PASS_TO_PASS)
        suite = run_tests(workspace.path, get_profile(cheat.instance.repo), test_files=files)
        assert not is_resolved(grade(cheat.instance, suite.statuses)), name
        assert set(cheat.instance.FAIL_TO_PASS) <= suite.failed(), name


@pytest.mark.slow
@pytest.mark.parametrize("name", CHEATS)
def test_the_harness_reverts_each_cheat_and_grades_it_unresolved(name: str, graded: Graded) -> None:
    cheat = CHEATS[name]
    report = graded.report(name)
    assert report["resolved"] is False and list(report) == ["patch_exists", "resolved", "tests_status", "model_name_or_path"]
    assert report["tests_status"]["FAIL_TO_PASS"] == {"success": [], "failure": cheat.instance.FAIL_TO_PASS}
    assert graded.reverted(name) == cheat.reverted
    # Every file the cheat plants is accounted for: reverted, or a plugin module left inert in the source package.
    touched = {line.split(" b/", 1)[1] for line in graded.patches[name].splitlines() if line.startswith("diff --git ")}
    assert touched - set(cheat.reverted) <= {"addict/force_pass.py"}, name


@pytest.mark.slow
def test_start_up_hooks_python_would_skip_here_are_removed_too(graded: Graded) -> None:
    assert graded.report("inert_start_up_hooks")["resolved"] is False
    assert graded.reverted("inert_start_up_hooks") == {path: reason for path, (_, reason) in INERT_HOOKS.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", FIXES)
def test_the_true_fix_stays_resolved_next_to_harmless_or_sabotaging_changes(name: str, graded: Graded) -> None:
    instance, _, reverted = FIXES[name]
    report = graded.report(name)
    assert report["resolved"] is True, name
    assert report["tests_status"]["FAIL_TO_PASS"] == {"success": instance.FAIL_TO_PASS, "failure": []}
    assert graded.reverted(name) == reverted


@pytest.mark.slow
def test_the_run_log_lists_what_was_reverted_and_the_test_command_used(graded: Graded) -> None:
    log = (graded.eval_dir / "fix_with_sabotage" / "run_instance.log").read_text()
    assert "Reverted changes outside the source files:\n  conftest.py: test file\n" in log
    assert f"  pytest.py: {OUTSIDE_ADDICT}\n" in log
    kept = (graded.eval_dir / "boltons_fix" / "run_instance.log").read_text()
    assert "Every change is to a source file." in kept and graded.reverted("boltons_fix") == {}
    test_log = (graded.eval_dir / "fix_with_sabotage" / "test_output.txt").read_text()
    assert "python -s -P -m pytest -c /run/oec-pytest/pytest.ini --rootdir /testbed --confcutdir /testbed" in test_log
    assert "configfile: ../run/oec-pytest/pytest.ini" in test_log
