"""`sweagent run` starts its environment before the agent's modules are loaded.

Loading the agent side (its pydantic config classes, templates, tools, models) takes about 0.15 s, and starting the
sandbox and building the task workspace about 0.1 s, most of it in other processes. What to solve and where
(`RunTarget`: the problem keys and `env`) can be read from the command line without the agent side, so the
dispatcher runs the command inside `starting(argv)`: it reads that part of the config and starts the environment
on a helper thread. `run_single.main` then `take`s it for the same problem and environment config; one that nobody
takes (the whole config was invalid, the agent check failed) is stopped when the command ends, before the process's
exit handlers remove the scratch folders it lives in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from sweagent.environment.problem import InstanceProblem, LocalRepoProblem, ProblemSource
from sweagent.environment.swe_env import EnvironmentConfig, SWEEnv
from sweagent.instance import find_instance
from sweagent.run.config_loading import COMMAND_LINE, ConfigError, build_config, parse_cli, resolve_config_path
from sweagent.utils.errors import OECError

DEFAULT_CONFIG = "config/default.yaml"


class RunTarget(BaseModel):
    """The keys of a `sweagent run` config that say what to solve and where (`RunSingleConfig` adds the agent)."""

    model_config = ConfigDict(extra="forbid")

    env: EnvironmentConfig = Field(default_factory=EnvironmentConfig)
    """Where the repository lives and commands run."""
    instance_file: Path | None = None
    """SWE-smith JSON/JSONL file holding the instance to solve."""
    instance_id: str | None = None
    """Which instance of `instance_file` to solve."""
    repo_path: Path | None = None
    """Instead of an instance: a local repository to work on."""
    problem_statement: str | None = None
    """With `repo_path`: the problem, as text."""
    problem_statement_file: Path | None = None
    """With `repo_path`: the problem, from a file."""

    def problem(self) -> ProblemSource:
        """The task instance or local repository these keys name."""
        if self.instance_file is not None:
            if not self.instance_id:
                raise ConfigError(f"{COMMAND_LINE}: key 'instance_id': required with --instance_file")
            return InstanceProblem(find_instance(resolve_config_path(self.instance_file), self.instance_id))
        if self.repo_path is not None:
            if self.problem_statement_file is not None:
                if not self.problem_statement_file.is_file():
                    raise ConfigError(f"{self.problem_statement_file}: problem statement file does not exist")
                statement = self.problem_statement_file.read_text()
            elif self.problem_statement:
                statement = self.problem_statement
            else:
                raise ConfigError(f"{COMMAND_LINE}: key 'problem_statement': required with --repo_path "
                                  "(text or --problem_statement_file)")
            return LocalRepoProblem(self.repo_path, statement)
        raise ConfigError(f"{COMMAND_LINE}: give --instance_file with --instance_id, or --repo_path with --problem_statement")


class _TargetKeys(RunTarget):
    model_config = ConfigDict(extra="ignore")  # the agent's keys are read later, with the agent's classes


_started: SWEEnv | None = None


@contextmanager
def starting(argv: list[str]) -> Iterator[None]:
    """Start the environment `argv` (the options of `sweagent run`) asks for, if they can be read, for the duration of
    the block; whatever is wrong with them is left for the whole config's reading to report."""
    global _started
    _started = _begin(argv)
    try:
        yield
    finally:
        env, _started = _started, None
        if env is not None:
            env.close()


def _begin(argv: list[str]) -> SWEEnv | None:
    if any(flag in argv for flag in ("-h", "--help")):
        return None
    try:
        config_files, overrides = parse_cli(argv)
        target = build_config(_TargetKeys, config_files or [resolve_config_path(DEFAULT_CONFIG)], overrides)
        problem = target.problem()
    except (OECError, ValueError):
        return None
    env = SWEEnv(target.env, problem)
    env.start_in_background()
    return env


def take(env_config: EnvironmentConfig, problem: ProblemSource) -> SWEEnv | None:
    """The environment `starting` started, if it is the one for `env_config` and `problem`; taken once."""
    global _started
    env, _started = _started, None
    if env is None:
        return None
    if env.config == env_config and type(env.problem) is type(problem) and vars(env.problem) == vars(problem):
        return env
    env.close()
    return None
