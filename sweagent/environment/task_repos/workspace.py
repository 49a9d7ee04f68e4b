"""Task workspaces: a git repository holding an instance's starting state, built from the pristine sdist tree.

The agent's workspace is the pristine tree with the bug applied and, as SWE-smith does, the test files that hold
FAIL_TO_PASS tests removed, so the agent cannot read the tests that grade it. That state is the repository's one
and only commit: `git diff HEAD` afterwards is exactly the agent's change, and no earlier commit holds the fix.
The evaluation variant is the same bug state with the test files present. Builds are deterministic (fixed
identity and dates, local git config only), so every workspace of an instance has the same commit hash.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sweagent.environment.task_repos.profiles import RepoProfile, RepoProfileError, files_of_tests, get_profile
from sweagent.environment.task_repos.source_cache import SourceError, pristine_tree
from sweagent.instance import TaskInstance

_FIXED_DATE = "2000-01-01T00:00:00+0000"
_GIT_ENV = {
    "GIT_AUTHOR_DATE": _FIXED_DATE,
    "GIT_COMMITTER_DATE": _FIXED_DATE,
    # Only the repository's own config counts: the machine's global or system config must not change the result.
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}
_LOCAL_CONFIG = {
    "user.name": "oec",
    "user.email": "oec@localhost",
    "commit.gpgsign": "false",
    "core.autocrlf": "false",
}
# Files that running code or tests create; excluded locally (not committed) so they never enter a diff.
_EXCLUDES = ("__pycache__/", "*.py[cod]", ".pytest_cache/", ".coverage")


class WorkspaceError(ValueError):
    """An instance whose workspace cannot be built; the message names the instance and the cause."""


@dataclass(frozen=True)
class Workspace:
    path: Path
    instance: TaskInstance
    profile: RepoProfile
    hidden_test_files: tuple[str, ...]
    """Test files removed from the agent's view (empty for the evaluation variant)."""
    base_commit: str
    """The one commit holding the starting state; the agent's change is the diff against it."""


def git(repo: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run git in `repo` with the deterministic, config-isolated environment; raise on failure."""
    return _run_with_git_env(["git", "-C", str(repo), *args], stdin=stdin)


def _run_with_git_env(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, env={**os.environ, **_GIT_ENV})
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, result.args, result.stdout, result.stderr)
    return result


def apply_patch(repo: Path, patch: str, *, reverse: bool = False, what: str = "patch") -> None:
    """`git apply` a diff to the working tree; a patch that does not apply raises WorkspaceError."""
    if not patch.strip():
        return
    args = ["apply", "--whitespace=nowarn", *(["--reverse"] if reverse else []), "-"]
    try:
        git(repo, *args, stdin=patch if patch.endswith("\n") else patch + "\n")
    except subprocess.CalledProcessError as exc:
        raise WorkspaceError(f"{what} does not apply: {' '.join(exc.stderr.split())}") from None


def _init_repo(path: Path, template: Path) -> None:
    """`git init` from a template folder that holds the local config and the excludes: one git process, not one per
    setting; the template also leaves out git's sample hooks."""
    sections: dict[str, list[str]] = {}
    for key, value in _LOCAL_CONFIG.items():
        section, name = key.split(".")
        sections.setdefault(section, []).append(f"\t{name} = {value}")
    (template / "info").mkdir(parents=True)
    (template / "config").write_text("".join(f"[{section}]\n" + "\n".join(lines) + "\n" for section, lines in sections.items()))
    (template / "info" / "exclude").write_text("\n".join(_EXCLUDES) + "\n", encoding="utf-8")
    git(path, "init", "--quiet", "--initial-branch=main", f"--template={template}")


def _commit_all(repo: Path, message: str) -> str:
    """Commit everything in `repo` and return the commit's hash: git's three steps in one shell, so the build
    starts one process from this (large, busy) one instead of three."""
    script = 'cd "$1" && git add --all && git commit --quiet --no-verify -m "$2" && git rev-parse HEAD'
    return _run_with_git_env(["sh", "-c", script, "sh", str(repo), message]).stdout.strip().splitlines()[-1]


def _hide(path: Path, instance: TaskInstance, test_files: list[str]) -> None:
    for test_file in test_files:
        target = path / test_file
        if not target.is_file():
            raise WorkspaceError(
                f"instance {instance.instance_id}: key 'FAIL_TO_PASS' names test file '{test_file}', "
                f"which is not in the {instance.repo} tree"
            )
        target.unlink()


def build_workspace(instance: TaskInstance, dest_dir: str | Path, *, hide_fail_to_pass_tests: bool = True) -> Workspace:
    """Create `dest_dir` (absent or empty) as a git repository in the instance's starting state.

    With `hide_fail_to_pass_tests=False` this is the evaluation variant: the bug state with every test file.
    An instance without a patch gives the pristine tree. The tree comes from the instance's own `source` when it
    has one (its bug patch was made against that archive), else from its repository profile; either way from an
    archive whose sha256 matches the pin.
    """
    try:
        profile = get_profile(instance.repo)
        pristine = pristine_tree(instance.source or profile.source)
    except (RepoProfileError, SourceError) as exc:
        raise WorkspaceError(f"instance {instance.instance_id}: {exc}") from None
    dest = Path(dest_dir).resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise WorkspaceError(f"{dest}: workspace destination must not exist or be an empty folder")
    hidden = files_of_tests(instance.FAIL_TO_PASS) if hide_fail_to_pass_tests else []
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Built next to the destination, then renamed: a killed build never leaves a half-made workspace at `dest`.
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.building-"))
    try:
        tree = staging / "repo"
        shutil.copytree(pristine, tree, symlinks=True)
        _init_repo(tree, staging / "git-template")
        apply_patch(tree, instance.patch, what=f"instance {instance.instance_id}: key 'patch'")
        _hide(tree, instance, hidden)
        base_commit = _commit_all(tree, "Task starting state")
        if dest.exists():
            dest.rmdir()
        os.rename(tree, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Workspace(dest, instance, profile, tuple(hidden), base_commit)
