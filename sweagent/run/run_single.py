"""`sweagent run`: one agent on one problem (a task instance, or a local repository plus a problem statement).

    sweagent run --config config/local_demo.yaml --instance_file config/demo/instances.json \
        --instance_id <id> --output_dir trajectories/demo
    sweagent run --config config/default.yaml --repo_path ~/src/proj --problem_statement "Crash when ..."
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sweagent.agent.agents import AgentConfig, DefaultAgent, Profile
from sweagent.agent.model_factory import get_model
from sweagent.agent.models import LiteLLMModel, Model
from sweagent.agent.retry_agent import AnyAgentConfig, RetryAgent, RetryAgentConfig
from sweagent.agent.templates import TemplateError
from sweagent.environment.problem import ProblemSource
from sweagent.environment.swe_env import EnvironmentConfig, SWEEnv
from sweagent.predictions import Prediction, write_prediction
from sweagent.run import early_start
from sweagent.run.config_loading import ConfigError, build_config, parse_cli, redact, resolve_config_path
from sweagent.run.early_start import DEFAULT_CONFIG, RunTarget
from sweagent.trajectory import Trajectory, traj_path
from sweagent.utils.errors import OECError
from sweagent.utils.files import write_text_atomic
from sweagent.utils.secrets import RedactingFilter

BATCH_ONLY_KEYS = ("instances", "num_workers", "rollouts_per_instance", "branches", "executor", "redo_existing",
                   "retry_infra_failures", "abort_after_identical_failures")
"""Keys of a run-batch config that `sweagent run` skips, so one config file serves both commands."""
INFRA_EXIT_CAUSES = frozenset({"ModelUnavailableError", "BranchDiverged"})
"""Exceptions that end a rollout because the machinery failed, not the model: the model server stayed unreachable, or
a branch's replayed prefix came out otherwise than recorded (run-batch records that branch as skipped)."""


class RunSingleConfig(RunTarget):
    """A `sweagent run` config: what to solve and where (`RunTarget`), the agent, and where its files go."""

    agent: AnyAgentConfig
    """The agent: templates, tools, model (or `type: retry` with several agents and a retry loop)."""
    output_dir: Path = Path("trajectories")
    """Run directory: <output_dir>/<id>/<id>.traj, .pred, .patch."""
    seed: int = 0
    """Run seed (switch points of a switching model are drawn from it)."""


def build_agent(agent_config: AgentConfig | RetryAgentConfig, *, instance_id: str, replay_config: str | None, seed: int,
                traj_id: str) -> DefaultAgent | RetryAgent:
    """The agent for one rollout; a switching model brings its own profiles and switch schedule, a retry agent builds
    one of these per attempt."""
    from sweagent.agent.switching_model import SwitchingModelConfig

    if isinstance(agent_config, RetryAgentConfig):
        return RetryAgent(agent_config, lambda attempt: build_agent(attempt, instance_id=instance_id, replay_config=replay_config,
                                                                    seed=seed, traj_id=traj_id),
                          instance_id=instance_id, replay_config=replay_config)

    if isinstance(agent_config.model, SwitchingModelConfig):
        switcher = agent_config.model.build(agent_config, instance_id=instance_id, seed=seed, traj_id=traj_id)
        return DefaultAgent(agent_config, switcher.profiles[0], switcher=switcher, replay_config=replay_config)
    profile = Profile(role=agent_config.model_role, model=get_model(agent_config.model, instance_id),
                      templates=agent_config.templates, tools=agent_config.tools,
                      history_processors=list(agent_config.history_processors))
    return DefaultAgent(agent_config, profile, replay_config=replay_config)


def _check_provider(model: Model) -> None:
    """litellm must know which provider serves the model name (`openai/...`, `hosted_vllm/...`, `claude-...`)."""
    if not isinstance(model, LiteLLMModel):
        return
    import litellm

    try:
        litellm.get_llm_provider(model=model.config.name, api_base=model.config.api_base)
    except litellm.exceptions.BadRequestError:
        raise ConfigError(f"key 'agent.model.name': litellm knows no provider for '{model.config.name}' "
                          "(expected e.g. openai/<name> or hosted_vllm/<name> with api_base, or a known model name)") from None


def check_agent(agent_config: AgentConfig, env_config: EnvironmentConfig, problem: ProblemSource, seed: int = 0) -> None:
    """Build the agent for `problem` and render its templates before any environment starts.

    A missing or garbage replay file, an unknown model provider or a template variable that does not exist then
    stops the command with one line, instead of ending every rollout with exit_error.
    """
    with contextlib.redirect_stdout(io.StringIO()):  # litellm prints a provider list next to an unknown model
        _check_agent(agent_config, env_config, problem, seed)


def _check_agent(agent_config: AgentConfig | RetryAgentConfig, env_config: EnvironmentConfig, problem: ProblemSource, seed: int) -> None:
    if isinstance(agent_config, RetryAgentConfig):
        try:  # the chooser's or reviewer's model
            build_agent(agent_config, instance_id=problem.id, replay_config=None, seed=seed, traj_id=problem.id)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"agent.retry_loop: {exc}") from None
        for attempt_config in agent_config.agent_configs:
            _check_agent(attempt_config, env_config, problem, seed)
        return
    try:
        agent = build_agent(agent_config, instance_id=problem.id, replay_config=None, seed=seed, traj_id=problem.id)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"agent.model: {exc}") from None
    env = SWEEnv(env_config, problem)  # never started: templates read only its config and problem
    try:
        for profile in agent.switcher.profiles:
            _check_provider(profile.model)
            agent.profile = profile
            try:
                agent.check_templates(env)
            except TemplateError as exc:
                raise ConfigError(f"agent.templates ({profile.role} {profile.model.name}): {exc}") from None
    finally:
        env.close()


def prepare_output_dir(path: Path) -> None:
    """Create the run directory; a file in its place, or a folder that cannot be made, is a one-line error."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"key 'output_dir': '{path}' is a file, expected a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"key 'output_dir': cannot create '{path}' ({exc.strerror})") from None


def is_infrastructure_failure(trajectory: Trajectory) -> bool:
    """True when the machinery, not the model, ended the rollout, so it is no data and is tried again.

    That is an environment or an agent error before the model did any step (the environment did not start, the
    tools did not install, the model server refused the first query) or a model server that stayed unreachable
    at any step. An environment that died after the model acted stays recorded: the model's commands may have
    killed it. Model outcomes (submitted, exit_format, exit_cost, exit_context, ...) are never retried.
    """
    info = trajectory.info
    if info.exit_status in ("exit_environment_error", "exit_error") and not trajectory.trajectory:
        return True
    return info.exit_status == "exit_error" and getattr(info, "exit_cause", None) in INFRA_EXIT_CAUSES


def dump_config(config: BaseModel) -> str:
    """The run config as JSON with secrets redacted (stored as the trajectory's replay_config)."""
    return json.dumps(redact(config.model_dump(mode="json")))


def _with_problem_statement(replay_config: str | None, problem: ProblemSource) -> str:
    """SWE-agent 1.x records the task as `problem_statement: {text, id}` in replay_config; downstream stages read it."""
    data = json.loads(replay_config) if replay_config else {}
    data["problem_statement"] = {"type": "text", "text": problem.problem_statement, "id": problem.id}
    return json.dumps(data)


def run_one(agent_config: AgentConfig, env_config: EnvironmentConfig, problem: ProblemSource, *, output_dir: Path,
            traj_id: str, replay_config: str | None, seed: int = 0,
            earlier_attempts: list[dict[str, Any]] | None = None, build: Callable[..., DefaultAgent] = build_agent,
            environment: SWEEnv | None = None) -> Trajectory:
    """Run one rollout and write its .traj, .patch and (last) .pred; the trajectory is readable even after a crash.

    An infrastructure failure (`is_infrastructure_failure`) gets no .pred, so it counts as unfinished and a rerun
    tries it again. `earlier_attempts` (what ended the previous tries of this rollout) is recorded in the
    trajectory's `info.earlier_attempts`. `build` makes the agent (`build_agent`'s signature; run-batch's branches
    pass their own). `environment`: one already starting for this problem and `env_config` (`early_start`).
    """
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
    env = environment or SWEEnv(env_config, problem)
    try:
        agent = build(agent_config, instance_id=problem.id, replay_config=replay_config, seed=seed, traj_id=traj_id)
        started = False
        try:
            env.start()
            started = True
        except Exception as exc:
            agent.info.exit_status = "exit_environment_error"
            agent.info.exit_message = f"environment failed to start: {type(exc).__name__}: {exc}"
            agent.info.exit_cause = type(exc).__name__
            logging.getLogger("sweagent.run").warning("environment failed to start: %s", exc, exc_info=True)
            trajectory = agent.trajectory(env)
        else:
            trajectory = agent.run(env, output_dir, traj_id)  # every agent's run saves what it returns
        if earlier_attempts or not started:  # a rerun after an infrastructure failure, or no run: save here
            if earlier_attempts:
                trajectory.info.earlier_attempts = earlier_attempts
            trajectory.save(traj_path(output_dir, traj_id))
    finally:
        env.close()
        root.removeHandler(handler)
        handler.close()
    patch = trajectory.info.submission or ""
    write_text_atomic(run_dir / f"{traj_id}.patch", patch)
    if is_infrastructure_failure(trajectory):
        return trajectory
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
        problem = config.problem()
        prepare_output_dir(config.output_dir)
        check_agent(config.agent, config.env, problem, config.seed)
    except OECError as exc:  # every bad-input error of OEC derives from it
        print(f"sweagent run: {exc}", file=sys.stderr)
        return 2
    trajectory = run_one(config.agent, config.env, problem, output_dir=config.output_dir, traj_id=problem.id,
                         replay_config=dump_config(config), seed=config.seed,
                         environment=early_start.take(config.env, problem))
    info = trajectory.info
    print(f"{problem.id}: {info.exit_status} after {len(trajectory.trajectory)} steps "
          f"-> {traj_path(config.output_dir, problem.id)}")
    if is_infrastructure_failure(trajectory):
        print(f"sweagent run: {problem.id}: {first_line(getattr(info, 'exit_message', '') or str(info.exit_status))} "
              "(not a model outcome: no .pred written)", file=sys.stderr)
        return 1
    return 0


def first_line(text: str) -> str:
    """The first line of an error message, for the console (the whole message is in the trajectory and log)."""
    return text.strip().splitlines()[0] if text.strip() else text
