"""Shared test setup: offline libraries, no local model server left running by the suite, the small task repository
the agent tests work on, the tool bundles and replayed answers they run with, one rollout through `run_one` (plain or
switching), and a fake environment for tests of the agent's loop logic (the sandbox has its own tests).

Test files import the helpers (`from conftest import XML_TOOLS, run_agent, xml`); fixtures are asked for by name."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(scope="session", autouse=True)
def _stop_local_servers_started_by_the_suite():
    """Tests share the default local servers (starting one takes seconds); the suite stops the ones it started, and
    only those: a server a script started meanwhile is the script's. The suite's servers are owned by this process,
    so they also stop if it is killed."""
    from sweagent.local_models import MODELS
    from sweagent.local_models.server import OWNER_ENV, stop_server

    os.environ[OWNER_ENV] = str(os.getpid())
    yield
    for name in MODELS:
        stop_server(name, owner_pid=os.getpid())


BUNDLES = [{"path": "tools/registry"}, {"path": "tools/edit_anthropic"}, {"path": "tools/submit"}]
# the tools most tests run with: the three bundles, answers in the xml_function_calling format
XML_TOOLS = {"bundles": BUNDLES, "parse_function": {"type": "xml_function_calling"}}
SUBMIT_XML = "<function=submit></function>"


def xml(command: str) -> str:
    """A replayed answer that runs `command` in bash, in the xml_function_calling format."""
    return f"<function=bash><parameter=command>{command}</parameter></function>"


def run_agent(tmp_path: Path, repo: Path, outputs: list, *, parse: str = "xml_function_calling", tools: dict | None = None,
              agent: dict | None = None, model: dict | None = None):
    """One `sweagent run`-style rollout of the replayed `outputs` on `repo` in the real sandbox: (trajectory, run dir)."""
    from sweagent.environment.problem import LocalRepoProblem
    from sweagent.run.config_loading import build_config
    from sweagent.run.run_single import RunSingleConfig, dump_config, run_one

    replay = tmp_path / "replay.yaml"
    replay.write_text(yaml.safe_dump(outputs))
    data = {
        "agent": {
            "templates": {"system_template": "{{command_docs}}\n{{format_instructions}}"},
            "tools": {"bundles": BUNDLES, "parse_function": {"type": parse}, **(tools or {})},
            "model": model or {"type": "replay", "replay_path": str(replay)},
            **(agent or {}),
        },
        "output_dir": str(tmp_path / "out"),
    }
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(data))
    config = build_config(RunSingleConfig, [config_file], [])
    problem = LocalRepoProblem(repo, "add() subtracts instead of adding", "calc")
    trajectory = run_one(config.agent, config.env, problem, output_dir=config.output_dir, traj_id="calc",
                         replay_config=dump_config(config))
    return trajectory, tmp_path / "out" / "calc"


def run_switching(tmp_path: Path, repo: Path, student: list, expert: list, switch: dict, *, expert_member: dict | None = None,
                  seed: int = 0):
    """One rollout in the real sandbox where a replayed student hands over to a replayed expert at `switch`."""
    from sweagent.environment.problem import LocalRepoProblem
    from sweagent.run.config_loading import build_config
    from sweagent.run.run_single import RunSingleConfig, dump_config, run_one

    for name, outputs in (("student", student), ("expert", expert)):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(outputs))
    members = [{"model": {"type": "replay", "replay_path": str(tmp_path / "student.yaml"), "name": "tiny-student"}},
               {"model": {"type": "replay", "replay_path": str(tmp_path / "expert.yaml"), "name": "big-expert"}, **(expert_member or {})}]
    data = {"agent": {"templates": {"system_template": "{{command_docs}}"},
                      "tools": XML_TOOLS,
                      "model": {"type": "switching", "models": members, "switch": switch}},
            "output_dir": str(tmp_path / "out"), "seed": seed}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    config = build_config(RunSingleConfig, [tmp_path / "c.yaml"], [])
    return run_one(config.agent, config.env, LocalRepoProblem(repo, "fix it", "proj"), output_dir=config.output_dir,
                   traj_id="proj", replay_config=dump_config(config), seed=seed)


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

    def upload(self, source: Path, target: str) -> None:
        if not source.is_dir():
            self.files[target] = source.read_text(errors="replace")
            return
        for path in source.rglob("*"):
            if path.is_file():
                self.files[f"{target.rstrip('/')}/{path.relative_to(source).as_posix()}"] = path.read_text(errors="replace")

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
