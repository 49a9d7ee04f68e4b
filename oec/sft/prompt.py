"""The student's inference prompt: SFT rows must show exactly what the student is sent.

By default the prompt comes from the run itself: each trajectory's `replay_config` records the run's config, and
the student's templates, tools, parse function and history processors are taken from it by the switcher's own rule
(`SwitchMemberConfig.prompt_parts`: the student member's, else the agent's; a one-model run's agent). A prompt file
(`--prompt_config`) overrides that: an agent config, or a fragment holding `agent.templates` and `agent.tools`.
Messages are rendered with the agent's variables (`problem_statement`, `working_dir`, `command_docs`,
`format_instructions`), so they equal what the agent sent, byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from sweagent.agent.history_processors import HistoryProcessorConfig, apply_history_processors
from sweagent.agent.templates import TemplateConfig, render
from sweagent.tools.commands import Command
from sweagent.tools.parsing import FunctionCallingParser, ParseFunction, ParseFunctionConfig
from sweagent.tools.tools import ToolConfig
from sweagent.utils.errors import describe_validation_error

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
    """Templates, tools, answer format and history processors of the student, with the tool list read once."""

    def __init__(self, templates: TemplateConfig, tools: ToolConfig, history_processors: list[Any]):
        self.templates = templates
        self.tools = tools
        self.history_processors = history_processors
        self.commands: list[Command] = tools.commands
        self.parser: ParseFunction = tools.parse_function
        self._command_docs = tools.command_docs()
        self.tool_schemas: list[dict[str, Any]] = tools.tool_schemas()
        """OpenAI tool schemas, stored in each row of the native tool-call style."""

    @property
    def native_tool_calls(self) -> bool:
        return isinstance(self.parser, FunctionCallingParser)

    def opening_messages(self, problem_statement: str, working_dir: str) -> list[dict[str, Any]]:
        """System prompt and task message, rendered like the agent renders them."""
        variables = {
            "problem_statement": problem_statement,
            "working_dir": working_dir,
            "command_docs": self._command_docs,
            "format_instructions": self.parser.format_instructions(),
        }
        return [
            {"role": "system", "content": render(self.templates.system_template, **variables)},
            {"role": "user", "content": render(self.templates.instance_template, **variables)},
        ]

    def as_seen(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`messages` after the student's history processors: the view its query at the row's last turn had.

        Processors that only annotate (cache breakpoints) leave the text as it was; their content lists are read
        back into the plain text they carry.
        """
        typed = [{**message, "message_type": "observation" if message["role"] in ("user", "tool") else message["role"]}
                 for message in messages]
        seen = []
        for message in apply_history_processors(self.history_processors, typed):
            content = message["content"]
            if isinstance(content, list):
                content = "".join(part.get("text", "") for part in content)
            seen.append({key: value for key, value in message.items() if key != "message_type"} | {"content": content})
        return seen


def _with_style(tools: ToolConfig, style: Style | None) -> ToolConfig:
    if style is None:
        return tools
    parser = TypeAdapter(ParseFunctionConfig).validate_python({"type": STYLE_PARSERS[style]})
    return tools.model_copy(update={"parse_function": parser})


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
            parts = sections.templates, sections.tools, sections.history_processors
        else:
            from sweagent.agent.agents import AgentConfig
            from sweagent.agent.switching_model import SwitchingModelConfig

            config = AgentConfig.model_validate(agent)
            if isinstance(config.model, SwitchingModelConfig):
                parts = config.model.models[0].prompt_parts(config)
            else:
                parts = config.templates, config.tools, list(config.history_processors)
    except ValidationError as exc:
        raise SFTError(f"{where}: {describe_validation_error(exc, 'agent', agent)}") from None
    templates, tools, history_processors = parts
    return StudentPrompt(templates, _with_style(tools, style), history_processors)


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
            self._by_config[key] = student_prompt(agent, f"{where} (recorded run config)", self.style)
        return self._by_config[key]


def recorded_working_dir(replay_config: str | None) -> str | None:
    """`env.working_dir` of the run that wrote a trajectory, when it recorded one."""
    try:
        env = json.loads(replay_config).get("env") if replay_config else None
    except (json.JSONDecodeError, AttributeError):
        return None
    working_dir = env.get("working_dir") if isinstance(env, dict) else None
    return working_dir if isinstance(working_dir, str) else None
