"""Repository profiles: everything needed to build and test one repository without docker, and its docker image.

A profile plays the role of a SWE-smith `RepoProfile` for a pristine tree that comes from a pinned PyPI sdist
instead of a GitHub mirror: where the importable code lives (flat or `src/` layout), which test command prints
per-test results, which exact test dependencies its virtual environment gets, and which log parser grades it.
Task instances name their profile in `repo`, in SWE-smith's form `<org>/<owner>__<name>.<commit>`.

Adding a repository is data: profiles are YAML entries (the bundled ones in `config/demo/repo_profiles.yaml`), and
a `repo_profiles.yaml` next to an instance file is read when that file is loaded.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from sweagent.instance import PyPISdistSource
from sweagent.utils.errors import describe_validation_error
from sweagent.utils.errors import OECError
from sweagent import REPO_ROOT
from sweagent.utils.yaml_text import load_yaml

DEFAULT_MOUNT = "/testbed"
"""Where the sandbox shows the workspace; SWE-smith's images use the same path."""

# pytest 8 reports a unittest test whose `subTest` fails as FAILED; pytest 9 reports the subtest on its own line
# and the test itself as PASSED, which a per-test grader would read as a pass.
PYTEST_TEST_DEPS = ("pytest==8.3.5", "pluggy==1.5.0", "iniconfig==2.0.0", "packaging==24.2")

# -rA prints one `STATUS test_id` line per test, which `parse_log_pytest` reads; --tb=short keeps the
# assertion messages that problem statements quote.
PYTEST_REPORT_OPTIONS = ("-rA", "--tb=short", "--color=no")
PYTEST_CONFIG = "/run/oec-pytest/pytest.ini"
"""Where the test run's pytest configuration appears, read-only, in the sandbox: outside the workspace, so the
repository's own pytest settings (pytest.ini, pyproject.toml, setup.cfg, tox.ini), which a patch can change, are
never read."""


def _parse_pytest_log(log: str) -> dict[str, str]:
    # swebench imports datasets and pandas (seconds): only grading pays for it, not every rollout's start
    from swebench.harness.log_parsers.python import parse_log_pytest

    return parse_log_pytest(log, None)


LOG_PARSERS: dict[str, Callable[[str], dict[str, str]]] = {"pytest": _parse_pytest_log}


PROFILES_FILE = "repo_profiles.yaml"
"""The profiles file read next to an instance file."""
BUNDLED_PROFILES = REPO_ROOT / "config" / "demo" / PROFILES_FILE
_SWESMITH_REPO = r"^(?P<org>[A-Za-z0-9_.-]+)/(?P<owner>[A-Za-z0-9_.-]+?)__(?P<name>[A-Za-z0-9_.-]+)\.(?P<commit>[0-9a-f]{8})$"


class RepoProfileError(OECError):
    """An unknown repository name or a bad profiles file; the message says what to add or fix."""


class RepoProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(pattern=_SWESMITH_REPO)
    """The name instances use in their `repo` field, SWE-smith's `<org>/<owner>__<name>.<commit>` (its mirror name
    where SWE-smith has the repository; else any org, with the sdist's sha256 prefix as the commit)."""
    source: PyPISdistSource
    """The pinned sdist whose tree is the pristine repository."""
    code_root: str = "."
    """Folder (relative to the repository root) put on PYTHONPATH: "." for a flat layout, "src" for a src layout."""
    pytest_plugins: tuple[str, ...] = ()
    """Modules the tests need as pytest plugins (`-p`); plugins are not discovered, so nothing else loads."""
    test_paths: tuple[str, ...]
    """What the test command runs when no test files are named: the whole suite."""
    source_paths: tuple[str, ...]
    """The package's code (folders or files, relative to the root): where procedural bugs may be planted."""
    test_deps: tuple[str, ...] = PYTEST_TEST_DEPS
    """Exact pins installed (without their dependencies, so the set is complete and reproducible) in the test venv."""
    log_parser: Literal["pytest"] = "pytest"
    """Key in LOG_PARSERS of the parser that turns a test log into {test id: status}."""
    test_timeout_s: float = 120.0
    """Upper bound for one run of the whole suite."""
    python: str = Field(default_factory=lambda: f"{sys.version_info.major}.{sys.version_info.minor}")
    """Python version the test venv is created with (the one running OEC)."""

    @property
    def repo_name(self) -> str:
        """SWE-smith's repo name (`<owner>__<name>.<commit>`): the part of every instance id before its bug name."""
        return self.repo.split("/", 1)[1]

    def swesmith_parts(self) -> dict[str, str]:
        """The org, owner, name and commit that SWE-smith's profile for this repository has (or would have)."""
        match = re.fullmatch(_SWESMITH_REPO, self.repo)
        assert match is not None, "validated by the field's pattern"
        return match.groupdict()

    def parse_log(self, log: str) -> dict[str, str]:
        """Per-test status (`PASSED`, `FAILED`, `ERROR`, `SKIPPED`, `XFAIL`) read from a test log."""
        return LOG_PARSERS[self.log_parser](log)

    def tests_command(self, test_files: Sequence[str] = (), mount: str = DEFAULT_MOUNT) -> str:
        """The shell command that runs `test_files` (or the whole suite) with settings only the harness controls.

        setarch turns address randomisation off: object ids, and the order of sets hashed by them (any set holding
        None), are then the same on every run, so a tree's test log is reproducible (PYTHONHASHSEED does the rest).
        `python -s -P` keeps the user site and the working directory off sys.path, so a `pytest.py`, `_pytest/` or
        `pluggy.py` in the workspace cannot stand in for the real ones. `-c` names the harness's configuration,
        `--rootdir` fixes the root test ids are relative to, `--confcutdir` ignores conftest.py files above the
        workspace; no cache provider, so test runs leave no files behind.
        """
        plugins = [arg for plugin in self.pytest_plugins for arg in ("-p", plugin)]
        argv = [
            "python", "-s", "-P", "-m", "pytest", "-c", PYTEST_CONFIG, "--rootdir", mount, "--confcutdir", mount,
            "-p", "no:cacheprovider", *plugins, *PYTEST_REPORT_OPTIONS, *(list(test_files) or self.test_paths),
        ]
        return f'setarch "$(uname -m)" --addr-no-randomize {shlex.join(argv)}'

    def pytest_config(self, mount: str = DEFAULT_MOUNT) -> str:
        """The file at PYTEST_CONFIG: it puts the code root on sys.path once pytest itself is imported."""
        return f"[pytest]\npythonpath = {shlex.quote(self.pythonpath(mount))}\n"

    def pythonpath(self, mount: str = DEFAULT_MOUNT) -> str:
        """PYTHONPATH that makes the workspace's code importable without installing it."""
        return str(PurePosixPath(mount) / self.code_root) if self.code_root != "." else mount

    def venv_key(self) -> str:
        """Names the test venv: it changes whenever the Python version or a pinned test dependency changes."""
        digest = hashlib.sha256("\n".join([self.python, *sorted(self.test_deps)]).encode()).hexdigest()
        return f"{self.repo_name}-py{self.python}-{digest[:12]}"


def file_of_test(test_id: str) -> str:
    """The file part of a pytest test id (`tests/test_x.py::Class::test_y` -> `tests/test_x.py`)."""
    return test_id.split("::", 1)[0]


def files_of_tests(test_ids: Sequence[str]) -> list[str]:
    """Sorted, distinct test files of some test ids, as SWE-smith's `get_test_files` computes them."""
    return sorted({file_of_test(test_id) for test_id in test_ids})


_PROFILE_LIST = TypeAdapter(list[RepoProfile])


def load_profiles(path: Path) -> dict[str, RepoProfile]:
    """The profiles of a YAML file (a list of entries); a bad file is one line naming it, the entry and the key."""
    try:
        entries = load_yaml(path.read_text(encoding="utf-8")) or []
        profiles = _PROFILE_LIST.validate_python(entries)
    except (OSError, yaml.YAMLError) as exc:
        raise RepoProfileError(f"{path}: cannot read repository profiles ({' '.join(str(exc).split())})") from None
    except ValidationError as exc:
        raise RepoProfileError(f"{path}: {describe_validation_error(exc)}") from None
    by_repo: dict[str, RepoProfile] = {}
    for profile in profiles:
        if by_repo.setdefault(profile.repo, profile) is not profile:
            raise RepoProfileError(f"{path}: repository '{profile.repo}' has two profiles")
    return by_repo


REPO_PROFILES: dict[str, RepoProfile] = load_profiles(BUNDLED_PROFILES)
"""Every known profile by `repo`: the bundled ones and those of the profiles files read so far."""


def register_profiles_near(instances_file: Path) -> None:
    """Add the profiles of the `repo_profiles.yaml` next to an instance file, if there is one."""
    path = instances_file.parent / PROFILES_FILE
    if not path.is_file() or path.resolve() == BUNDLED_PROFILES:
        return
    for repo, profile in load_profiles(path).items():
        known = REPO_PROFILES.setdefault(repo, profile)
        if known != profile:
            raise RepoProfileError(f"{path}: repository '{repo}' already has another profile ({BUNDLED_PROFILES} or an earlier file)")


def get_profile(repo: str) -> RepoProfile:
    """The profile an instance's `repo` names; an unknown one is one line saying what to add, and where."""
    try:
        return REPO_PROFILES[repo]
    except KeyError:
        known = ", ".join(sorted(REPO_PROFILES))
        raise RepoProfileError(
            f"no repository profile for '{repo}': add one (sdist pin and sha256, source and test paths) to a "
            f"{PROFILES_FILE} next to the instance file, as in {BUNDLED_PROFILES.relative_to(BUNDLED_PROFILES.parents[2])} "
            f"(known: {known})"
        ) from None
