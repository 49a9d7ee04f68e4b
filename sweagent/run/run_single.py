"""`sweagent run`: one agent on one problem (a task instance, or a local repository plus a problem statement).

    sweagent run --config config/local_demo.yaml --instance_file config/demo/instances.json \
        --instance_id <id> --output_dir trajectories/demo
    sweagent run --config config/default.yaml --repo_path ~/src/proj --problem_statement "Crash when ..."
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from sweagent.agent.agents import AgentConfig, DefaultAgent, Profile
from sweagent.agent.model_factory import get_model
from sweagent.environment.problem import InstanceProblem, LocalRepoProblem, ProblemSource
from sweagent.environment.swe_env import EnvironmentConfig, SWEEnv
from sweagent.instance import InstanceError, find_instance
from sweagent.predictions import Prediction, write_prediction
from sweagent.run.config_loading import ConfigError, build_config, parse_cli, redact, resolve_config_path
from sweagent.trajectory import Trajectory, traj_path
from sweagent.utils.files import write_text_atomic
from sweagent.utils.secrets import RedactingFilter

DEFAULT_CONFIG = "config/default.yaml"
BATCH_ONLY_KEYS = ("instances", "num_workers", "rollouts_per_instance", "executor", "redo_existing")
"""Keys of a run-batch config that `sweagent run` skips, so one config file serves both commands."""


class RunSingleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: AgentConfig
    """The agent: templates, tools, model."""
    env: EnvironmentConfig = Field(default_factory=EnvironmentConfig)
    """Where the repository lives and commands run."""
    output_dir: Path = Path("trajectories")
    """Run directory: <output_dir>/<id>/<id>.traj, .pred, .patch."""
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
    seed: int = 0
    """Run seed (switch points of a switching model are drawn from it)."""


def problem_from_config(config: RunSingleConfig) -> ProblemSource:
    if config.instance_file is not None:
        if not config.instance_id:
            raise ConfigError("command line: key 'instance_id': required with --instance_file")
        return InstanceProblem(find_instance(resolve_config_path(config.instance_file), config.instance_id))
    if config.repo_path is not None:
        if config.problem_statement_file is not None:
            if not config.problem_statement_file.is_file():
                raise ConfigError(f"{config.problem_statement_file}: problem statement file does not exist")
            statement = config.problem_statement_file.read_text()
        elif config.problem_statement:
            statement = config.problem_statement
        else:
            raise ConfigError("command line: key 'problem_statement': required with --repo_path (text or --problem_statement_file)")
        return LocalRepoProblem(config.repo_path, statement)
    raise ConfigError("command line: give --instance_file with --instance_id, or --repo_path with --problem_statement")


def build_agent(agent_config: AgentConfig, *, instance_id: str, replay_config: str | None, seed: int, traj_id: str) -> DefaultAgent:
    """The agent for one rollout; a switching model brings its own profiles and switch schedule."""
    from sweagent.agent.switching_model import SwitchingModelConfig

    if isinstance(agent_config.model, SwitchingModelConfig):
        switcher = agent_config.model.build(agent_config, instance_id=instance_id, seed=seed, traj_id=traj_id)
        return DefaultAgent(agent_config, switcher.profiles[0], switcher=switcher, replay_config=replay_config)
    profile = Profile(role=agent_config.model_role, model=get_model(agent_config.model, instance_id),
                      templates=agent_config.templates, tools=agent_config.tools,
                      history_processors=list(agent_config.history_processors))
    return DefaultAgent(agent_config, profile, replay_config=replay_config)


def dump_config(config: BaseModel) -> str:
    """The run config as JSON with secrets redacted (stored as the trajectory's replay_config)."""
    return json.dumps(redact(config.model_dump(mode="json")))


def _with_problem_statement(replay_config: str | None, problem: ProblemSource) -> str:
    """SWE-agent 1.x records the task as `problem_statement: {text, id}` in replay_config; downstream stages read it."""
    data = json.loads(replay_config) if replay_config else {}
    data["problem_statement"] = {"type": "text", "text": problem.problem_statement, "id": problem.id}
    return json.dumps(data)


def run_one(agent_config: AgentConfig, env_config: EnvironmentConfig, problem: ProblemSource, *, output_dir: Path,
            traj_id: str, replay_config: str | None, seed: int = 0) -> Trajectory:
    """Run one rollout and write its .traj, .pred and .patch; the trajectory is readable even after a crash."""
    replay_config = _with_problem_statement(replay_config, problem)
    run_dir = output_dir / traj_id
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / f"{traj_id}.info.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    thread = threading.get_ident()
    handler.addFilter(lambda record: record.thread == thread)  # parallel rollouts keep separate logs
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("sweagent")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    env = SWEEnv(env_config, problem)
    try:
        agent = build_agent(agent_config, instance_id=problem.id, replay_config=replay_config, seed=seed, traj_id=traj_id)
        try:
            env.start()
        except Exception as exc:
            agent.info.exit_status = "exit_environment_error"
            agent.info.exit_message = f"environment failed to start: {type(exc).__name__}: {exc}"
            logging.getLogger("sweagent.run").exception("environment failed to start")
            trajectory = agent.trajectory(env)
            trajectory.save(traj_path(output_dir, traj_id))
        else:
            trajectory = agent.run(env, output_dir, traj_id)
    finally:
        env.close()
        root.removeHandler(handler)
        handler.close()
    patch = trajectory.info.submission or ""
    write_text_atomic(run_dir / f"{traj_id}.patch", patch)
    model_name = trajectory.info.oec.expert.name if trajectory.info.oec else (trajectory.trajectory[-1].model_name if trajectory.trajectory else "")
    write_prediction(run_dir / f"{traj_id}.pred", Prediction(
        instance_id=problem.id, model_name_or_path=model_name or "", model_patch=patch,
        traj_id=traj_id if traj_id != problem.id else None))
    return trajectory


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(flag in argv for flag in ("-h", "--help")):
        print(__doc__)
        print("Options: --config FILE (repeatable; default config/default.yaml) and any config key as --dotted.key VALUE.")
        return 0
    try:
        config_files, overrides = parse_cli(argv)
        config = build_config(RunSingleConfig, config_files or [resolve_config_path(DEFAULT_CONFIG)], overrides,
                              ignore_keys=BATCH_ONLY_KEYS)
        problem = problem_from_config(config)
    except (ConfigError, InstanceError, ValueError) as exc:
        print(f"sweagent run: {exc}", file=sys.stderr)
        return 2
    trajectory = run_one(config.agent, config.env, problem, output_dir=config.output_dir, traj_id=problem.id,
                         replay_config=dump_config(config), seed=config.seed)
    info = trajectory.info
    print(f"{problem.id}: {info.exit_status} after {len(trajectory.trajectory)} steps "
          f"-> {traj_path(config.output_dir, problem.id)}")
    return 0
