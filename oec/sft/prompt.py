"""The student's inference prompt: SFT rows must show exactly what the student is sent.

By default the prompt comes from the run itself: each trajectory's `replay_config` records the run's config, and
the student's templates, tools, parse function and history processors are taken from it by the switcher's own rule
(`SwitchMemberConfig.prompt_parts`: the student member's, else the agent's; a one-model run's agent). A prompt file
(`--prompt_config`) overrides that: an agent config, or a fragment holding `agent.templates` and `agent.tools`.
A row opens with the agent's own opening messages (`agents.opening_messages`: system prompt, demonstrations, task,
strategy), so they equal what the agent sent, byte for byte; `opening_mismatch` checks each row against the
student's first recorded query, which catches what a config cannot replay (a template that shows the bundles' first
state, such as `{{open_file}}`; a bundle or demonstration edited since the run). Recorded bundle paths are absolute;
a run dir read in another checkout finds a bundle that is gone in this checkout's `tools/` by its folder name.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from sweagent.agent.demonstrations import demonstration_messages
from sweagent.agent.history_processors import HistoryProcessorConfig, apply_history_processors
from sweagent.agent.templates import TemplateConfig
from sweagent.tools.commands import Command
from sweagent.tools.parsing import FunctionCallingParser, ParseFunction, ParseFunctionConfig
from sweagent.tools.tools import ToolConfig
from sweagent.trajectory import Trajectory, api_message
from sweagent.utils.errors import OECError, describe_validation_error

from oec.sft.errors import SFTError
from oec.sft.options import STYLE_PARSERS, Style
from sweagent import REPO_ROOT

DEFAULT_PROMPT_CONFIG = REPO_ROOT / "config" / "qwen32b_switch_claude_python_tools.yaml"
"""The paper setup, whose student prompt the benchmarks and synthetic trajectories use."""


class _PromptSections(BaseModel):
    """An agent config fragment without a model: its own templates, tools and history processors."""

    model_config = ConfigDict(extra="ignore")

    templates: TemplateConfig = TemplateConfig()
    tools: ToolConfig = ToolConfig()
    history_processors: list[HistoryProcessorConfig] = []


class StudentPrompt:
    """Templates, tools, answer format and history processors of the student, with the tool list and the
    demonstrations read once. Raises OECError for a bundle or demonstration that cannot be read."""

    def __init__(self, templates: TemplateConfig, tools: ToolConfig, history_processors: list[Any], agent_name: str = "main"):
        self.templates = templates
        self.tools = tools
        self.history_processors = history_processors
        self.agent_name = agent_name
        self.commands: list[Command] = tools.commands
        self.parser: ParseFunction = tools.parse_function
        self._demonstrations = demonstration_messages(templates, agent_name)
        self.tool_schemas: list[dict[str, Any]] = tools.tool_schemas()
        """OpenAI tool schemas, stored in each row of the native tool-call style."""

    @property
    def native_tool_calls(self) -> bool:
        return isinstance(self.parser, FunctionCallingParser)

    def opening_messages(self, problem_statement: str, working_dir: str) -> list[dict[str, Any]]:
        """The history the student's rollout opened with, built by the agent's own code (demonstrations marked
        `is_demo`). The bundles' first state is not recorded: templates see `working_dir` only."""
        from sweagent.agent.agents import opening_messages  # the agent module loads the environment's

        return opening_messages(self.templates, self.tools, self.agent_name, self._demonstrations,
                                problem_statement=problem_statement, state={"working_dir": working_dir})

    def row_messages(self, history: list[dict[str, Any]], as_seen: bool) -> list[dict[str, Any]]:
        """History messages as row messages: what the model is sent (`api_message`), assistant messages with their
        weight (0 for a demonstration's: the student was shown them, never asked for them).

        `as_seen` applies the student's history processors first: the view its query at the row's last turn had.
        Processors that only annotate (cache breakpoints) leave the text as it was; their content lists are read
        back into the plain text they carry.
        """
        if as_seen:
            history = apply_history_processors(self.history_processors, history)
        rows = []
        for message in history:
            row = api_message(message)
            row["content"] = _text(row["content"])
            if row["role"] == "assistant":
                row["weight"] = message.get("weight", 0)
            rows.append(row)
        return rows


def _text(content: Any) -> Any:
    """Plain text of a content list (cache-controlled messages carry one), else the content as it is."""
    return "".join(part.get("text", "") for part in content) if isinstance(content, list) else content


def opening_mismatch(row_opening: list[dict[str, Any]], trajectory: Trajectory) -> str | None:
    """Where a row's opening messages differ from the opening of the student's first recorded query, else None.

    Checked when the first step is the student's (or the run had one model, whose prompt it is) and recorded its
    query; other trajectories (synthetic ones, runs opened by the expert) have nothing to check against."""
    steps = trajectory.trajectory
    if not steps or not steps[0].query or (steps[0].model_role != "student" and trajectory.info.oec is not None):
        return None
    sent = steps[0].query
    for index, message in enumerate(row_opening):
        mine = {key: value for key, value in message.items() if key != "weight"}
        theirs = {**sent[index], "content": _text(sent[index].get("content"))} if index < len(sent) else None
        if mine != theirs:
            return f"opening message {index} ({message['role']}) differs from the student's first query"
    return None


def _with_style(tools: ToolConfig, style: Style | None) -> ToolConfig:
    if style is None:
        return tools
    parser = TypeAdapter(ParseFunctionConfig).validate_python({"type": STYLE_PARSERS[style]})
    return tools.model_copy(update={"parse_function": parser})


def _bundles_here(agent: dict[str, Any], where: str) -> dict[str, Any]:
    """`agent` with each recorded bundle that no longer exists replaced by this checkout's `tools/<its name>`."""
    agent = copy.deepcopy(agent)
    model = agent.get("model")
    members = model.get("models") if isinstance(model, dict) else None
    sections = [("agent.tools", agent.get("tools"))] + [
        (f"agent.model.models.{index}.tools", member.get("tools"))
        for index, member in enumerate(members if isinstance(members, list) else []) if isinstance(member, dict)]
    for key, tools in sections:
        bundles = tools.get("bundles") if isinstance(tools, dict) else None
        for index, bundle in enumerate(bundles if isinstance(bundles, list) else []):
            path = Path(bundle["path"]) if isinstance(bundle, dict) and isinstance(bundle.get("path"), str) else None
            if path is None or not path.is_absolute() or path.exists():
                continue
            here = REPO_ROOT / "tools" / path.name
            if not here.is_dir():
                raise SFTError(f"{where}: key '{key}.bundles.{index}.path': the recorded bundle {path} does not exist, "
                               f"nor does {here}; name the student's prompt with --prompt_config")
            bundle["path"] = str(here)
    return agent


def student_prompt(agent: Any, where: str, style: Style | None = None) -> StudentPrompt:
    """The student's prompt from an `agent` config section; `where` names its source in errors.

    With a model, the section is read as a whole `AgentConfig` and the student's parts are picked by the switcher's
    rule; without one (a prompt fragment), its own templates, tools and history processors are the student's.
    """
    if not isinstance(agent, dict):
        raise SFTError(f"{where}: key 'agent': expected a mapping with 'templates' and 'tools'")
    try:
        if "model" not in agent:
            sections = _PromptSections.model_validate(agent)
            parts, name = (sections.templates, sections.tools, sections.history_processors), "main"
        else:
            from sweagent.agent.agents import AgentConfig
            from sweagent.agent.switching_model import SwitchingModelConfig

            config = AgentConfig.model_validate(agent)
            if isinstance(config.model, SwitchingModelConfig):
                parts = config.model.models[0].prompt_parts(config)
            else:
                parts = config.templates, config.tools, list(config.history_processors)
            name = config.name
        templates, tools, history_processors = parts
        return StudentPrompt(templates, _with_style(tools, style), history_processors, name)
    except ValidationError as exc:
        raise SFTError(f"{where}: {describe_validation_error(exc, 'agent', agent)}") from None
    except OECError as exc:  # a bundle or demonstration that cannot be read
        raise SFTError(f"{where}: {exc}") from None


def load_student_prompt(path: str | Path = DEFAULT_PROMPT_CONFIG, style: Style | None = None) -> StudentPrompt:
    """Read a prompt file (an agent config or a fragment of one); `style` (xml, tool, ticks) overrides its parser."""
    from sweagent.run.config_loading import ConfigError, load_yaml_file

    try:
        data = load_yaml_file(Path(path))
    except ConfigError as exc:
        raise SFTError(str(exc)) from None
    return student_prompt(data.get("agent"), str(path), style)


class RecordedPrompts:
    """The student prompt each trajectory's run recorded, parsed once per distinct config."""

    def __init__(self, style: Style | None):
        self.style = style
        self._by_config: dict[str, StudentPrompt] = {}

    def for_run_config(self, replay_config: str | None, where: str) -> StudentPrompt:
        """Raises SFTError when the trajectory holds no usable config (a plain SWE-agent or mini-swe-agent one)."""
        try:
            agent = json.loads(replay_config).get("agent") if replay_config else None
        except (json.JSONDecodeError, AttributeError):
            agent = None
        if agent is None:
            raise SFTError(f"{where}: key 'replay_config.agent': the run recorded no agent config; "
                           "name the student's prompt with --prompt_config")
        key = json.dumps(agent, sort_keys=True)
        if key not in self._by_config:
            where = f"{where} (recorded run config)"
            self._by_config[key] = student_prompt(_bundles_here(agent, where), where, self.style)
        return self._by_config[key]


def recorded_working_dir(replay_config: str | None) -> str | None:
    """`env.working_dir` of the run that wrote a trajectory, when it recorded one."""
    try:
        env = json.loads(replay_config).get("env") if replay_config else None
    except (json.JSONDecodeError, AttributeError):
        return None
    working_dir = env.get("working_dir") if isinstance(env, dict) else None
    return working_dir if isinstance(working_dir, str) else None
