"""Shared test setup: offline libraries, no local model server left running by the suite, the small task repository
the agent tests work on, and a fake environment for tests of the agent's loop logic (the sandbox has its own tests)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(scope="session", autouse=True)
def _stop_local_servers_started_by_the_suite():
    """Tests share the default local servers (starting one takes seconds); the suite stops the ones it started."""
    from sweagent.local_models import MODELS
    from sweagent.local_models.server import server_status, stop_server

    running_before = {name for name in MODELS if server_status(name).state == "running"}
    yield
    for name in MODELS:
        if name not in running_before:
            stop_server(name)


def make_calc_repo(folder: Path) -> Path:
    """`<folder>/calc`: one module whose add() subtracts, the bug the agent tests fix."""
    path = folder / "calc"
    path.mkdir(exist_ok=True)
    (path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    return path


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A local repository for `LocalRepoProblem` (see `make_calc_repo`)."""
    return make_calc_repo(tmp_path)


class FakeEnv:
    """An environment for the agent's loop logic: no sandbox, no repository, every answer scripted.

    `answer(command)` gives each command's output (or raises, like a dying environment would); installing the tool
    bundles goes through it too, so the default answers "" to whatever a test did not script. `submit` answers
    with the submission marker, and the submission is `patch`. `commands` records every command, in order.
    """

    def __init__(self, answer: Callable[[str], str] | None = None, patch: str = "diff --git a/calc.py b/calc.py\n",
                 problem_statement: str = "add() subtracts instead of adding"):
        from types import SimpleNamespace

        from sweagent.environment.swe_env import EnvironmentConfig

        self.config = EnvironmentConfig()
        self.problem = SimpleNamespace(id="calc", problem_statement=problem_statement)
        self.answer = answer or (lambda command: "")
        self.patch = patch
        self.commands: list[str] = []
        self.files: dict[str, str] = {}

    def communicate(self, command: str, timeout: float = 30, check: bool = False) -> str:
        from sweagent.tools.tools import SUBMISSION_MARKER

        self.commands.append(command)
        if command.strip() == "submit":
            self.files["/root/model.patch"] = self.patch
            return SUBMISSION_MARKER
        return self.answer(command)

    def interrupt_session(self) -> str:
        return ""

    def set_env_variables(self, variables: dict[str, str]) -> None:
        pass

    def upload(self, source: Path, target: str) -> None:
        pass

    def write_file(self, path: str, content: str) -> None:
        self.files[path] = content

    def read_file(self, path: str) -> str:
        return self.files.get(path, "")

    def get_patch(self) -> str:
        return self.patch

    def close(self) -> None:
        pass


@pytest.fixture()
def fake_env() -> type[FakeEnv]:
    """The `FakeEnv` class, to build one per test with its own answers."""
    return FakeEnv
