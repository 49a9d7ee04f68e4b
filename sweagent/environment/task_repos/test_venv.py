"""One virtual environment per repository profile with its pinned test dependencies, built once and shared.

The venv lives at `$OEC_CACHE/venvs/<repo>-py<version>-<hash of the pins>-<hash of the interpreter>`; the sandbox
sees it read-only, and every workspace of the repository (agent rollouts, validation, evaluation) runs its tests with
it. The repository's own code is never installed: PYTHONPATH points at the workspace, so the agent's edits are what
runs.

A venv cannot be renamed after creation (its scripts hold absolute paths), so instead of build-then-rename the
build happens in place under a file lock and a stamp file marks it complete; an unstamped folder is a killed
build and is rebuilt from scratch.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sweagent.environment.sandbox.bwrap import SANDBOX_PATH
from sweagent.environment.task_repos.profiles import DEFAULT_MOUNT, RepoProfile
from sweagent.environment.task_repos.source_cache import cache_root

_STAMP = ".oec-complete"

# What the test run's interpreter and pytest take from the environment: no user site, no plugin found through
# entry points (a patch can add a *.dist-info or *.egg-info declaring one), only the plugins the profile names.
PYTEST_ENV = {"PYTHONNOUSERSITE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


class VenvBuildError(RuntimeError):
    """Creating the test venv or installing its pinned dependencies failed."""


@dataclass(frozen=True)
class RepoVenv:
    path: Path

    @property
    def bin_dir(self) -> Path:
        return self.path / "bin"

    def env(self, pythonpath: str) -> dict[str, str]:
        """Variables that run the tests with this venv against the code at `pythonpath`."""
        return {
            "PATH": f"{self.bin_dir}:{SANDBOX_PATH}",
            "VIRTUAL_ENV": str(self.path),
            "PYTHONPATH": pythonpath,
            # Bytecode files would show up as untracked changes in the agent's diff.
            "PYTHONDONTWRITEBYTECODE": "1",
            # Sets of strings print in the same order on every run, so test logs (and reports quoting them) repeat.
            "PYTHONHASHSEED": "0",
        }


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise VenvBuildError(f"{what} failed (exit {result.returncode}):\n{tail}")


def _build(profile: RepoProfile, path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    # The venv gets no pip of its own: OEC's pip installs into it, and nothing should install later.
    _run([sys.executable, "-m", "venv", "--without-pip", str(path)], f"creating the test venv {path}")
    _run(
        [
            sys.executable, "-m", "pip", "--python", str(path / "bin" / "python"), "install", "--quiet",
            "--disable-pip-version-check", "--no-deps", *profile.test_deps,
        ],
        f"installing {' '.join(profile.test_deps)} into {path}",
    )
    (path / _STAMP).write_text("\n".join(profile.test_deps) + "\n", encoding="utf-8")


def _interpreter_key() -> str:
    """Names the interpreter a test venv is built from: its `python` links to that installation, so checkouts whose
    OEC venvs sit on different Pythons of one minor version (a pyenv 3.11.7 and Debian's 3.11.2) never share one (the
    sandbox shows only the running interpreter's installation, where another's link would dangle)."""
    return hashlib.sha256(f"{sys.base_prefix}\n{sys.version}".encode()).hexdigest()[:8]


def ensure_test_venv(profile: RepoProfile) -> RepoVenv:
    """The profile's test venv, built the first time it is asked for (concurrent callers wait for one build)."""
    venvs = cache_root() / "venvs"
    name = f"{profile.venv_key()}-{_interpreter_key()}"
    path = venvs / name
    if (path / _STAMP).is_file():
        return RepoVenv(path)
    venvs.mkdir(parents=True, exist_ok=True)
    with open(venvs / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / _STAMP).is_file():
            _build(profile, path)
    return RepoVenv(path)


def sandbox_env(profile: RepoProfile, mount: str = DEFAULT_MOUNT) -> dict[str, str]:
    """Environment for commands in a sandboxed workspace of the profile's repository (builds the test venv once)."""
    return ensure_test_venv(profile).env(profile.pythonpath(mount))


def tests_env(profile: RepoProfile, mount: str = DEFAULT_MOUNT) -> dict[str, str]:
    """Environment for `RepoProfile.tests_command`: no PYTHONPATH, whose entries Python searches while it starts
    (for a `sitecustomize.py`) and before its own packages (for `pytest`), and PYTEST_ENV."""
    env = sandbox_env(profile, mount)
    del env["PYTHONPATH"]
    return {**env, **PYTEST_ENV}


def venv_binds(profile: RepoProfile) -> list[str]:
    """Host paths the sandbox must show read-only: the test venv, which may sit under the hidden home."""
    return [str(ensure_test_venv(profile).path)]
