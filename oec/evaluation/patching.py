"""Putting a model patch into an evaluation workspace: apply it, then revert whatever it did to test files.

Every command from the moment the patch lands runs in the sandbox, git included: a patch can plant files that git
or the tests would execute (hooks, conftest.py), and those must never run on the host. The patch is tried with
`git apply` and then with `patch --fuzz` (checked with a dry run first, so a failed attempt leaves no half-applied
hunks). Test files are reverted as SWE-smith does for the files of the FAIL_TO_PASS/PASS_TO_PASS tests, and also
for any other test file (the profile's test paths, pytest's naming conventions, conftest.py, pytest.ini), which a
patch could otherwise use to change how the graded tests run.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sweagent.environment.repo_profiles import RepoProfile, files_of_tests
from sweagent.environment.sandbox import run_sandboxed
from sweagent.instance import TaskInstance

SANDBOX_PATCH = "/run/oec-eval/model.patch"
"""Where the patch file appears, read-only, inside the sandbox."""
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
_TEST_FILE_NAME = re.compile(r"^(test_.*\.py|.*_test\.py|conftest\.py|pytest\.ini)$")
_TEST_DIR_NAMES = {"test", "tests", "testing"}
_PATCH_PATHS = re.compile(r"^(?:--- |\+\+\+ |diff --git |rename to |copy to )(.*)$", re.MULTILINE)


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


def protected_files(instance: TaskInstance, profile: RepoProfile) -> Callable[[str], bool]:
    """Whether a repository path is a test file, whose changes the harness reverts before running the tests."""
    graded = set(files_of_tests(instance.FAIL_TO_PASS + instance.PASS_TO_PASS))
    roots = [PurePosixPath(path) for path in profile.test_paths]

    def is_test_file(path: str) -> bool:
        posix = PurePosixPath(path)
        return (
            path in graded
            or any(posix == root or root in posix.parents for root in roots)
            or bool(_TEST_FILE_NAME.match(posix.name))
            or any(part in _TEST_DIR_NAMES for part in posix.parts[:-1])
        )

    return is_test_file


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


def revert_test_files(workspace: Path, applied: AppliedPatch, is_test_file: Callable[[str], bool]) -> list[str]:
    """Restore every changed test file to the starting state (new ones are removed); returns the reverted paths."""
    reverted = sorted(path for path in applied.changed if is_test_file(path))
    if not reverted:
        return []
    restore = [path for path in reverted if applied.changed[path] != "A"]
    remove = [path for path in reverted if applied.changed[path] == "A"]
    steps = []
    if restore:
        steps.append(f"git checkout -q HEAD -- {shlex.join(restore)}")
    if remove:
        steps.append(f"git rm -q -f -- {shlex.join(remove)}")
    result = run_sandboxed(" && ".join(steps), workspace, timeout=GIT_TIMEOUT_S)
    if result.exit_code != 0:
        raise PatchRejected(f"cannot revert the patch's changes to test files {reverted}: {result.output.strip()}")
    return reverted
