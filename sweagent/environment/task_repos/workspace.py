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
    "maintenance.auto": "false",  # no `git maintenance` process after the commit
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


_APPLY = ("apply", "--whitespace=nowarn")


def git(repo: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run git in `repo` with the deterministic, config-isolated environment; raise on failure."""
    result = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True, text=True,
                            env={**os.environ, **_GIT_ENV})
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, result.args, result.stdout, result.stderr)
    return result


def apply_patch(repo: Path, patch: str, *, reverse: bool = False, what: str = "patch") -> None:
    """`git apply` a diff to the working tree; a patch that does not apply raises WorkspaceError."""
    if not patch.strip():
        return
    args = [*_APPLY, *(["--reverse"] if reverse else []), "-"]
    try:
        git(repo, *args, stdin=patch if patch.endswith("\n") else patch + "\n")
    except subprocess.CalledProcessError as exc:
        raise _not_applying(what, exc.stderr) from None


def _not_applying(what: str, stderr: str) -> WorkspaceError:
    return WorkspaceError(f"{what} does not apply: {' '.join(stderr.split())}")


def _write_git_template(template: Path) -> None:
    """A `git init --template` folder holding the local config and the excludes (one git process, not one per
    setting); it also leaves out git's sample hooks."""
    sections: dict[str, list[str]] = {}
    for key, value in _LOCAL_CONFIG.items():
        section, name = key.split(".")
        sections.setdefault(section, []).append(f"\t{name} = {value}")
    (template / "info").mkdir(parents=True)
    (template / "config").write_text("".join(f"[{section}]\n" + "\n".join(lines) + "\n" for section, lines in sections.items()))
    (template / "info" / "exclude").write_text("\n".join(_EXCLUDES) + "\n", encoding="utf-8")


_BUILD_SCRIPT = """
set -e
pristine=$1 tree=$2 template=$3 has_patch=$4 message=$5
shift 5
cp -a "$pristine" "$tree"
git init --quiet --initial-branch=main --template="$template" "$tree"
cd "$tree"
if [ "$has_patch" = 1 ] && ! git %s -; then exit %d; fi
for test_file; do
    if [ ! -f "$test_file" ]; then printf '%%s' "$test_file" >&2; exit %d; fi
    rm -f -- "$test_file"
done
git add --all
git commit --quiet --no-verify -m "$message"
git rev-parse HEAD
"""
_PATCH_FAILED, _TEST_FILE_MISSING = 97, 98


def _hidden_test_files(instance: TaskInstance) -> list[str]:
    """The FAIL_TO_PASS test files, each a path inside the tree (a hostile id such as `../../x.py::t` would have the
    build delete a host file)."""
    files = files_of_tests(instance.FAIL_TO_PASS)
    for test_file in files:
        parts = Path(test_file).parts
        if not parts or Path(test_file).is_absolute() or ".." in parts:
            raise WorkspaceError(f"instance {instance.instance_id}: key 'FAIL_TO_PASS': test file '{test_file}' "
                                 "is not a relative path inside the repository")
    return files


def _build_tree(instance: TaskInstance, pristine: Path, staging: Path, hidden: list[str]) -> tuple[Path, str]:
    """Copy the pristine tree, make it a repository, apply the bug, remove the hidden tests and commit: one shell,
    so the build starts one process from this (large, busy) one instead of six and waits once."""
    tree, template = staging / "repo", staging / "git-template"
    _write_git_template(template)
    patch = instance.patch if instance.patch.endswith("\n") else instance.patch + "\n"
    has_patch = bool(instance.patch.strip())
    argv = ["sh", "-c", _BUILD_SCRIPT % (" ".join(_APPLY), _PATCH_FAILED, _TEST_FILE_MISSING), "sh",
            str(pristine), str(tree), str(template), str(int(has_patch)), "Task starting state", *hidden]
    result = subprocess.run(argv, input=patch if has_patch else "", capture_output=True, text=True,
                            env={**os.environ, **_GIT_ENV})
    if result.returncode == _PATCH_FAILED:
        raise _not_applying(f"instance {instance.instance_id}: key 'patch'", result.stderr)
    if result.returncode == _TEST_FILE_MISSING:
        raise WorkspaceError(f"instance {instance.instance_id}: key 'FAIL_TO_PASS' names test file '{result.stderr}', "
                             f"which is not in the {instance.repo} tree")
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, argv[:2], result.stdout, result.stderr)
    return tree, result.stdout.strip().splitlines()[-1]


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
    hidden = _hidden_test_files(instance) if hide_fail_to_pass_tests else []
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Built next to the destination, then renamed: a killed build never leaves a half-made workspace at `dest`.
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.building-"))
    try:
        tree, base_commit = _build_tree(instance, pristine, staging, hidden)
        if dest.exists():
            dest.rmdir()
        os.rename(tree, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Workspace(dest, instance, profile, tuple(hidden), base_commit)
