"""Putting a model patch into an evaluation workspace: apply it, then revert every change outside the source files.

Every command from the moment the patch lands runs in the sandbox, git included: a patch can plant files that git
or the tests would execute (hooks, conftest.py), and those must never run on the host. The patch is tried with
`git apply` and then with `patch --fuzz` (checked with a dry run first, so a failed attempt leaves no half-applied
hunks). The grade must depend only on the repository's code, so a change survives only if it is under the repo
profile's source paths and is neither a test file (SWE-smith reverts the files of the FAIL_TO_PASS/PASS_TO_PASS
tests; here also the profile's test paths, pytest's naming conventions and conftest.py) nor a file that steers
Python or pytest instead of being imported as code. Everything else (tests, configuration, new top-level files such
as `pytest.py` or `sitecustomize.py`, packaging metadata) is put back to the starting state before the tests run.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sweagent.environment.task_repos.profiles import RepoProfile, files_of_tests
from sweagent.environment.sandbox.bwrap import run_sandboxed
from sweagent.instance import TaskInstance
from sweagent.utils.scratch import process_scratch_dir

SANDBOX_PATCH = "/run/oec-eval/model.patch"
"""Where the patch file appears, read-only, inside the sandbox."""
_SANDBOX_LISTS = "/run/oec-eval/revert"
"""Folder where the NUL-separated lists of paths to remove and to restore appear, read-only, inside the sandbox."""
GIT_TIMEOUT_S = 300.0
# (name, command): tried in order until one applies the patch; {patch} is the patch file inside the sandbox.
APPLY_COMMANDS = (
    ("git apply", "git apply --verbose --whitespace=nowarn {patch}"),
    (
        "patch --fuzz",
        "patch --batch --fuzz=5 -p1 --no-backup-if-mismatch --dry-run -i {patch}"
        " && patch --batch --fuzz=5 -p1 --no-backup-if-mismatch -i {patch}",
    ),
)
# After applying, stage everything (ignored files too, so a patched .gitignore cannot hide a new conftest.py) and
# list what changed against the starting commit.
_CHANGES_MARKER = "@@oec-changed-files@@"
_LIST_CHANGES = f"echo {_CHANGES_MARKER} && git add --all --force && git diff --cached --name-status --no-renames -z HEAD"
# Paths are read from files, never a command line (no length limit) and literally (a file named `*.py` is no glob).
_REVERT_STEPS = {
    "remove": f"git --literal-pathspecs rm -q -f --pathspec-from-file={_SANDBOX_LISTS}/remove --pathspec-file-nul",
    "restore": f"git --literal-pathspecs checkout -q HEAD --pathspec-from-file={_SANDBOX_LISTS}/restore --pathspec-file-nul",
}
_TEST_FILE_NAME = re.compile(r"^(test_.*\.py|.*_test\.py|conftest\.py)$")
_TEST_DIR_NAMES = {"test", "tests", "testing"}
# Files under the source paths that are not code the tests import but steer how Python or pytest runs: pytest
# configuration, start-up hooks, bytecode and extension modules (imported instead of the .py beside them),
# packaging metadata (entry points register plugins).
_NOT_SOURCE_NAME = re.compile(
    r"^(pytest\.ini|\.pytest\.ini|tox\.ini|setup\.cfg|pyproject\.toml|sitecustomize\.py|usercustomize\.py"
    r"|.*\.(pth|pyc|pyo|so|pyd))$"
)
_NOT_SOURCE_DIR = re.compile(r"^(__pycache__|.*\.dist-info|.*\.egg-info)$")
_PATCH_PATHS = re.compile(r"^(?:--- |\+\+\+ |\*\*\* |Index: |diff --git |(?:rename|copy) (?:from|to) )(.*)$", re.MULTILINE)

TEST_FILE = "test file"
OUTSIDE_SOURCE = "outside the source paths"
NOT_SOURCE = "not source code (pytest configuration, start-up hook, bytecode, extension module or packaging metadata)"


class PatchRejected(Exception):
    """The patch cannot be put into the workspace; the message is the reason the report records."""


@dataclass(frozen=True)
class AppliedPatch:
    method: str
    """Name of the command that applied it (see APPLY_COMMANDS)."""
    log: str
    """What that command printed."""
    changed: dict[str, str]
    """Changed path → git status letter (A added, M modified, D deleted, T type changed)."""


def revert_rule(instance: TaskInstance, profile: RepoProfile) -> Callable[[str], str | None]:
    """Why the harness reverts a change to a repository path, or None for a source file, whose change stays."""
    graded = set(files_of_tests(instance.FAIL_TO_PASS + instance.PASS_TO_PASS))
    test_roots = [PurePosixPath(path) for path in profile.test_paths]
    source_roots = [PurePosixPath(path) for path in profile.source_paths]

    def under(posix: PurePosixPath, roots: list[PurePosixPath]) -> bool:
        return any(posix == root or root in posix.parents for root in roots)

    def reason(path: str) -> str | None:
        posix = PurePosixPath(path)
        if (
            path in graded
            or under(posix, test_roots)
            or _TEST_FILE_NAME.match(posix.name)
            or any(part in _TEST_DIR_NAMES for part in posix.parts[:-1])
        ):
            return TEST_FILE
        if not under(posix, source_roots):
            return f"{OUTSIDE_SOURCE} ({', '.join(profile.source_paths)})"
        if _NOT_SOURCE_NAME.match(posix.name) or any(_NOT_SOURCE_DIR.match(part) for part in posix.parts[:-1]):
            return NOT_SOURCE
        return None

    return reason


def _touches_git_dir(patch: str) -> bool:
    """A patch naming a path inside `.git` could plant hooks or config that change what git reports."""
    return any(".git" in PurePosixPath(path.split("\t")[0]).parts for path in _PATCH_PATHS.findall(patch))


def _parse_changes(listing: str) -> dict[str, str]:
    fields = listing.split("\0")
    return {path: status for status, path in zip(fields[0::2], fields[1::2]) if path}


def apply_model_patch(workspace: Path, patch_file: Path) -> AppliedPatch:
    """Apply `patch_file` in the sandbox with the first command that works; raise PatchRejected with every reason."""
    if _touches_git_dir(patch_file.read_text(encoding="utf-8", errors="replace")):
        raise PatchRejected("the patch writes inside the .git directory")
    reasons = []
    for name, command in APPLY_COMMANDS:
        script = f"{command.format(patch=SANDBOX_PATCH)} && {_LIST_CHANGES}"
        result = run_sandboxed(script, workspace, timeout=GIT_TIMEOUT_S, ro_binds=[f"{patch_file}:{SANDBOX_PATCH}"])
        log, marker, listing = result.output.partition(f"{_CHANGES_MARKER}\n")
        if result.exit_code == 0 and marker:
            return AppliedPatch(name, log, _parse_changes(listing))
        if marker:
            raise PatchRejected(f"{name} applied the patch but git cannot list the changes: {listing.strip()}")
        reasons.append(f"{name}: {log.strip() or f'exit code {result.exit_code}'}")
    raise PatchRejected("\n".join(reasons))


def revert_changes(workspace: Path, applied: AppliedPatch, reason_of: Callable[[str], str | None]) -> dict[str, str]:
    """Put every change `reason_of` rejects back to the starting state (added files are removed) and check that
    only the kept changes remain; returns reverted path → reason."""
    reverted = {path: reason for path in sorted(applied.changed) if (reason := reason_of(path)) is not None}
    if not reverted:
        return {}
    kept = {path: status for path, status in applied.changed.items() if path not in reverted}
    # Removals first: a patch that replaced file `x` by `x/y` needs `x/y` gone before `x` comes back.
    lists = {"remove": [p for p in reverted if applied.changed[p] == "A"],
             "restore": [p for p in reverted if applied.changed[p] != "A"]}
    steps, binds = [], []
    with tempfile.TemporaryDirectory(prefix="oec-revert-", dir=process_scratch_dir()) as folder:
        for name, paths in lists.items():
            if paths:
                host = Path(folder, name)
                host.write_text("".join(f"{path}\0" for path in paths), encoding="utf-8")
                binds.append(f"{host}:{_SANDBOX_LISTS}/{name}")
                steps.append(_REVERT_STEPS[name])
        result = run_sandboxed(" && ".join([*steps, _LIST_CHANGES]), workspace, timeout=GIT_TIMEOUT_S, ro_binds=binds)
    log, marker, listing = result.output.partition(f"{_CHANGES_MARKER}\n")
    if result.exit_code != 0 or not marker:
        raise PatchRejected(f"cannot revert the patch's changes to {sorted(reverted)}: {log.strip() or listing.strip()}")
    left = _parse_changes(listing)
    if left != kept:
        raise PatchRejected(f"reverting {sorted(reverted)} left changes {left}, expected only {kept}")
    return reverted
