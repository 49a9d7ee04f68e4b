"""The step loop: query the model, parse its action, run it, show the observation; until submit or an exit.

A run is one `DefaultAgent.run`. Everything the model-specific part needs (templates, tools, parse function,
history processors, model, role) lives in a `Profile`, so that a switching model can hand the rollout to another
profile part-way without the loop knowing anything about switching.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from swerex.exceptions import BashIncorrectSyntaxError, CommandTimeoutError, SwerexException

from sweagent import __version__
from sweagent.agent.demonstrations import demonstration_messages
from sweagent.agent.edited_files import edited_files_with_context
from sweagent.agent.history_processors import HistoryProcessorConfig, apply_history_processors
from sweagent.agent.model_factory import ModelConfig
from sweagent.agent.models import InstanceStats, Model, ModelLimitError, ModelOutput
from sweagent.agent.switching.base import SingleModel, Switcher
from sweagent.agent.switching.handover import hand_over
from sweagent.agent.templates import TemplateConfig, render
from sweagent.environment.swe_env import SWEEnv
from sweagent.tools.parsing import FormatError
from sweagent.tools.tools import EXIT_FORFEIT_TOKEN, RETRY_TOKENS, SUBMISSION_MARKER, ToolConfig
from sweagent.trajectory import ModelRole, Trajectory, TrajectoryInfo, TrajectoryStep, TrajectoryWriter, api_message, traj_path

logger = logging.getLogger(__name__)


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["default"] = "default"
    """One agent, one attempt (`retry` runs several attempts and picks one: sweagent/agent/retry_agent.py)."""
    name: str = "main"
    """Recorded as `agent` on every history message."""
    templates: TemplateConfig = Field(default_factory=TemplateConfig)
    """Prompt templates."""
    tools: ToolConfig = Field(default_factory=ToolConfig)
    """Tool bundles, parse function and execution limits."""
    history_processors: list[HistoryProcessorConfig] = []
    """Applied, in order, to the messages before each query."""
    model: ModelConfig
    """The model: `litellm`, `replay`, or `switching` (student then expert)."""
    model_role: ModelRole = "expert"
    """Role recorded for a single-model run (a switching model records its own roles)."""
    max_requeries: int = 3
    """Re-queries after a format error or a refused action before the run ends with exit_format."""


def opening_messages(templates: TemplateConfig, tools: ToolConfig, agent_name: str, demonstrations: list[dict[str, Any]], *,
                     problem_statement: str, state: dict[str, Any]) -> list[dict[str, Any]]:
    """System prompt, demonstrations, then the task message (instance and strategy templates joined by a newline, one
    message as in SWE-agent, so history processors keep the strategy with the task): what a rollout opens with.

    Needs no environment (`state` holds `working_dir` and what the bundles' state commands reported), so SFT rows
    open with this same code; `demonstrations` is `demonstration_messages(templates, agent_name)`, read once by
    callers that open many rows."""
    variables = {
        **{key: str(value) for key, value in tools.env_variables.items()},
        **state,
        "problem_statement": problem_statement,
        "command_docs": tools.command_docs(),
        "format_instructions": tools.parse_function.format_instructions(),
    }
    lenient = bool(tools.state_commands)  # see `templates.render`
    task = [templates.instance_template] + ([templates.strategy_template] if templates.strategy_template else [])
    return [
        {"role": "system", "content": render(templates.system_template, lenient, **variables), "agent": agent_name, "message_type": "system_prompt"},
        *demonstrations,
        {"role": "user", "content": "\n".join(render(template, lenient, **variables) for template in task), "agent": agent_name,
         "message_type": "observation"},
    ]


class _ExitRun(Exception):
    """Ends the loop with an exit status (raised from deep inside a step)."""

    def __init__(self, exit_status: str, message: str = ""):
        super().__init__(message or exit_status)
        self.exit_status = exit_status


@dataclass
class Profile:
    """One model with everything needed to prompt it and read its answers."""

    role: ModelRole
    model: Model
    templates: TemplateConfig
    tools: ToolConfig
    history_processors: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        bind_tools = getattr(self.model, "bind_tools", None)
        if bind_tools is not None:  # the oracle answers in whatever format these tools are parsed with
            bind_tools(self.tools)

    @property
    def parser(self) -> Any:
        return self.tools.parse_function


class DefaultAgent:
    def __init__(self, config: AgentConfig, profile: Profile, *, switcher: Switcher | None = None, replay_config: str | None = None):
        self.config = config
        self.profile = profile
        self.switcher: Switcher = switcher or SingleModel(profile)
        self.replay_config = replay_config
        self.history: list[dict[str, Any]] = []
        self.steps: list[TrajectoryStep] = []
        self.info = TrajectoryInfo(swe_agent_version=__version__)
        self._consecutive_timeouts = 0
        self._execution_time = 0.0
        self._state: dict[str, Any] = {}
        """What the bundles' state commands last reported (template variables such as open_file, diff)."""

    # ---- messages -------------------------------------------------------------------------------------------------
    def _append(self, role: str, content: str, message_type: str, **extra: Any) -> None:
        self.history.append({"role": role, "content": content, "agent": self.config.name, "message_type": message_type, **extra})

    def build_opening_messages(self, env: SWEEnv) -> list[dict[str, Any]]:
        """The current profile's opening messages (see `opening_messages`)."""
        profile = self.profile
        return opening_messages(profile.templates, profile.tools, self.config.name,
                                demonstration_messages(profile.templates, self.config.name),
                                problem_statement=env.problem.problem_statement, state={"working_dir": env.config.working_dir, **self._state})

    def _api_messages(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [api_message(message) for message in apply_history_processors(self.profile.history_processors, history)]

    @property
    def _lenient(self) -> bool:
        """Templates may use variables only the bundles' state commands define (see `templates.render`)."""
        return bool(self.profile.tools.state_commands)

    def check_templates(self, env: SWEEnv) -> None:
        """Render every template of the current profile once (raises TemplateError), before any environment runs."""
        self.build_opening_messages(env)
        for observation in ("output", "", "x" * (self.profile.templates.max_observation_length + 1)):
            self.profile.templates.observation_message(observation, lenient=self._lenient, **self._state)

    def _read_state(self, env: SWEEnv) -> dict[str, Any]:
        """What observation templates see besides the output: the working dir, then what the bundles' state
        commands reported (SWE-agent's `{{working_dir}}`, `{{open_file}}`, ...)."""
        return {"working_dir": env.config.working_dir, **self.profile.tools.get_state(env)}

    def _observation_message(self, observation: str, tool_call_ids: list[str] | None) -> None:
        content = self.profile.templates.observation_message(observation, lenient=self._lenient, **self._state)
        if tool_call_ids:
            self._append("tool", content, "observation", tool_call_ids=tool_call_ids)
        else:
            self._append("user", content, "observation")

    # ---- one step -------------------------------------------------------------------------------------------------
    def _query_and_parse(self, env: SWEEnv) -> tuple[ModelOutput, Any, list[dict[str, Any]]]:
        """Query; on a format error or refused action show the error and re-query (bounded)."""
        extra: list[dict[str, Any]] = []
        attempts = 0
        while attempts <= self.config.max_requeries:
            attempts += 1
            profile = self.profile
            tools = profile.tools.tool_schemas() if profile.tools.use_function_calling else None
            messages = self._api_messages(self.history + extra)
            output = profile.model.query(messages, tools)
            try:
                parsed = profile.parser.parse(output.content, output.tool_calls, profile.tools.commands)
                if profile.tools.filter.is_blocked(parsed.action):
                    raise FormatError(render(profile.tools.filter.blocklist_error_template, action=parsed.action))
                return output, parsed, messages
            except FormatError as exc:
                logger.info("format error (%s %s): %s | output: %r", profile.role, profile.model.name, exc, output.content[:300])
                error = render(profile.tools.format_error_template or profile.parser.format_error_template, error=str(exc))
                extra += [{"role": "assistant", "content": output.content or str(output.tool_calls), "message_type": "action"},
                          {"role": "user", "content": error, "message_type": "observation"}]
                if self._hand_over(self.switcher.profile_after_format_error(len(self.steps)), env):
                    extra, attempts = [], 0  # the new model starts this step afresh
        raise _ExitRun("exit_format", f"{self.config.max_requeries + 1} malformed outputs in a row")

    def _execute(self, env: SWEEnv, action: str) -> tuple[str, float]:
        tools = self.profile.tools
        started = time.perf_counter()
        try:
            observation = env.communicate(tools.guard_multiline_input(action), timeout=tools.execution_timeout)
            self._consecutive_timeouts = 0
        except CommandTimeoutError:
            self._consecutive_timeouts += 1
            try:
                env.interrupt_session()
            except Exception as exc:
                raise _ExitRun("exit_environment_error", f"could not interrupt a timed-out command: {exc}") from None
            if self._consecutive_timeouts >= tools.max_consecutive_execution_timeouts:
                raise _ExitRun("exit_command_timeout", f"{self._consecutive_timeouts} timeouts in a row")
            observation = render(self.profile.templates.command_cancelled_timeout_template, command=action, timeout=tools.execution_timeout)
        except BashIncorrectSyntaxError as exc:
            # bash's own report quotes the offending line as written; swe-rex's message repr()s the whole command,
            # and models copy those escapes back, doubling them every step.
            details = getattr(exc, "extra_info", None) or {}
            observation = render(self.profile.templates.shell_check_error_template, command=action,
                                 bash_stdout=details.get("bash_stdout", ""), bash_stderr=details.get("bash_stderr", str(exc)))
        elapsed = time.perf_counter() - started
        self._execution_time += elapsed
        if self._execution_time > tools.total_execution_timeout:
            raise _ExitRun("exit_command_timeout", f"total execution time {self._execution_time:.0f}s exceeded")
        return observation, elapsed  # recorded whole (the runtime bounds it); templates cut what the model sees

    def step(self, env: SWEEnv) -> bool:
        """One agent step; returns True when the model submitted."""
        profile = self.switcher.profile_for_step(len(self.steps))
        if profile is None:
            raise _ExitRun("exit_schedule", "the generation scheme ends the rollout here")
        self._hand_over(profile, env)
        output, parsed, messages = self._query_and_parse(env)
        tool_call_ids = [call["id"] for call in output.tool_calls] if output.tool_calls and self.profile.tools.use_function_calling else None
        self._append("assistant", output.content, "action", thought=parsed.thought, action=parsed.action,
                     tool_calls=output.tool_calls if tool_call_ids else None, model_role=self.profile.role,
                     model_name=self.profile.model.name)
        logger.info("step %d (%s %s): %s", len(self.steps), self.profile.role, self.profile.model.name, parsed.action[:300])
        observation, execution_time = self._execute(env, parsed.action)
        if EXIT_FORFEIT_TOKEN in observation:
            raise _ExitRun("exit_forfeit", "the model gave up (exit_forfeit)")
        for token in RETRY_TOKENS:  # SWE-agent's windowed editors mark outputs to re-query with; shown as they are
            observation = observation.replace(token, "").rstrip()
        submitted = SUBMISSION_MARKER in observation
        if submitted:
            self.info.submission = env.read_file("/root/model.patch")
            observation = observation.replace(SUBMISSION_MARKER, "").strip()
        self._state = self._read_state(env)
        self._observation_message(observation, tool_call_ids)
        self.steps.append(TrajectoryStep(
            action=parsed.action, observation=observation, response=output.content, thought=parsed.thought,
            execution_time=execution_time, state=dict(self._state), query=messages, model_role=self.profile.role, model_name=self.profile.model.name,
            extra_info={"tool_calls": output.tool_calls} if output.tool_calls else {},
        ))
        self.switcher.after_step(parsed.action)
        return submitted

    def _hand_over(self, target: Profile, env: SWEEnv) -> bool:
        """Let `target` act from now on, continuing the history; False when it is already acting."""
        if target is self.profile:
            return False
        source, self.profile = self.profile, target
        self.history = hand_over(self.history, source, target, env, self.build_opening_messages(env),
                                 reset=self.switcher.resets_history)
        return True

    # ---- the run --------------------------------------------------------------------------------------------------
    def trajectory(self, env: SWEEnv) -> Trajectory:
        return Trajectory(trajectory=self.steps, history=self.history, info=self._current_info(),
                          replay_config=self.replay_config, environment=env.problem.id)

    def _current_info(self) -> TrajectoryInfo:
        info = self.info.model_copy()
        info.model_stats = self.total_stats().model_dump()
        info.oec = self.switcher.oec_info()
        return info

    def total_stats(self) -> InstanceStats:
        return self.switcher.total_stats()

    def run(self, env: SWEEnv, output_dir: Path, traj_id: str) -> Trajectory:
        """Solve the problem in `env`; the trajectory is saved at the start, after every step (a journal line, see
        TrajectoryWriter) and at the end."""
        writer = TrajectoryWriter(traj_path(output_dir, traj_id))
        try:
            self.profile.tools.install(env, env.config.working_dir)
            self._state = self._read_state(env)
            self.history = self.build_opening_messages(env)
            writer.checkpoint(self.trajectory(env), self.history)
            while not self.step(env):
                writer.record(self.steps, self.history, self._current_info(), lambda: self.trajectory(env))
            self.info.exit_status = "submitted"
        except _ExitRun as exc:
            self._finish_with_exit(env, exc.exit_status, str(exc))
        except ModelLimitError as exc:
            self.info.exit_cause = type(exc).__name__  # run-batch retries what the model server, not the model, ended
            self._finish_with_exit(env, exc.exit_status, str(exc))
        except Exception as exc:  # anything else still leaves a readable trajectory behind
            self.info.exit_cause = type(exc).__name__
            status = "exit_environment_error" if _is_environment_failure(exc) else "exit_error"
            logger.exception("run %s ended with %s", traj_id, status)
            self._finish_with_exit(env, status, f"{type(exc).__name__}: {exc}")
        if self.info.submission:
            try:
                for key, value in edited_files_with_context(env, self.info.submission).items():
                    setattr(self.info, key, value)
            except Exception as exc:
                logger.warning("edited-file context unavailable: %s", exc)
        writer.close()
        trajectory = self.trajectory(env)
        trajectory.save(writer.path)
        return trajectory

    def _finish_with_exit(self, env: SWEEnv, exit_status: str, message: str) -> None:
        """Record why the run ended and auto-submit the current diff where the environment still answers."""
        logger.info("exit: %s (%s)", exit_status, message)
        self.info.exit_status = exit_status
        self.info.exit_message = message
        if exit_status == "exit_environment_error":
            return
        try:
            self.info.submission = env.get_patch()
        except Exception as exc:
            logger.warning("auto-submission failed: %s", exc)


def _is_environment_failure(exc: Exception) -> bool:
    from sweagent.environment.swe_env import SWEEnvError

    return isinstance(exc, (SWEEnvError, SwerexException, BrokenPipeError, ConnectionError, EOFError))
