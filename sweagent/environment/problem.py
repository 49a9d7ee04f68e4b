"""What the agent is asked to solve, and how its repository is made: a task instance or a local repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Protocol

from sweagent.ids import id_from_name
from sweagent.instance import TaskInstance


class ProblemSource(Protocol):
    id: str
    problem_statement: str
    image_name: str | None

    def build_workspace(self, dest: Path) -> None:
        """Create the repository on the host at `dest`, committed, ready for the agent (where a deployment runs it
        from a host folder)."""

    def sandbox_options(self, mount: str) -> tuple[dict[str, str], list[str]]:
        """Environment variables and read-only host paths the sandbox needs to run this repository's code."""


class InstanceProblem:
    """A SWE-smith task instance: the bug applied to the pristine tree, the failing tests hidden."""

    def __init__(self, instance: TaskInstance):
        self.instance = instance
        self.id = instance.instance_id
        self.problem_statement = instance.problem_statement
        self.image_name = instance.image_name

    def build_workspace(self, dest: Path) -> None:
        from sweagent.environment.task_repos.workspace import build_workspace

        build_workspace(self.instance, dest)

    def sandbox_options(self, mount: str) -> tuple[dict[str, str], list[str]]:
        from sweagent.environment.task_repos.profiles import get_profile
        from sweagent.environment.task_repos.test_venv import sandbox_env, venv_binds

        profile = get_profile(self.instance.repo)
        return sandbox_env(profile, mount), venv_binds(profile)


class LocalRepoProblem:
    """A repository on disk plus a problem statement written by the user (`sweagent run --repo_path`)."""

    def __init__(self, repo_path: Path, problem_statement: str, problem_id: str | None = None):
        if not repo_path.is_dir():
            raise ValueError(f"{repo_path}: repository folder does not exist (option --repo_path)")
        self.repo_path = repo_path
        self.problem_statement = problem_statement
        self.id = problem_id or id_from_name(repo_path.resolve().name)
        self.image_name = None

    def build_workspace(self, dest: Path) -> None:
        git = ["git", "-c", "user.name=oec", "-c", "user.email=oec@localhost"]
        if (self.repo_path / ".git").exists():
            subprocess.run(["git", "clone", "-q", str(self.repo_path), str(dest)], check=True, capture_output=True)
            # Uncommitted work in the user's checkout is part of the starting state.
            shutil.copytree(self.repo_path, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
        else:
            shutil.copytree(self.repo_path, dest, symlinks=True)
            subprocess.run(["git", "init", "-q", str(dest)], check=True)
        subprocess.run(["git", "-C", str(dest), "add", "-A"], check=True)
        subprocess.run([*git, "-C", str(dest), "commit", "-q", "--allow-empty", "-m", "oec: starting state"], check=True)

    def sandbox_options(self, mount: str) -> tuple[dict[str, str], list[str]]:
        return {}, []
