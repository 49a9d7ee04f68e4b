"""The student's inference prompt: SFT rows must show exactly what the trained student will see.

The prompt file is an agent config (or a fragment of one): `agent.templates` and `agent.tools` are read with the
agent's own classes and rendered with the same variables the agent uses (`problem_statement`, `working_dir`,
`command_docs`, `format_instructions`), so a student run with that config sees the prompt it was trained on.
Other keys under `agent` (the model, ...) are ignored, so a student's full run config works as the prompt file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from sweagent.agent.templates import TemplateConfig, render
from sweagent.tools.commands import Command
from sweagent.tools.parsing import FunctionCallingParser, ParseFunction, ParseFunctionConfig
from sweagent.tools.tools import ToolConfig

from oec.sft.errors import SFTError
from sweagent.utils.errors import describe_validation_error

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PROMPT_CONFIG = REPO_ROOT / "config" / "student_inference_prompt.yaml"
Style = Literal["xml", "tool", "ticks"]
STYLE_PARSERS: dict[str, str] = {"xml": "xml_function_calling", "tool": "function_calling", "ticks": "thought_action"}


class _PromptSections(BaseModel):
    model_config = ConfigDict(extra="ignore")

    templates: TemplateConfig = TemplateConfig()
    tools: ToolConfig = ToolConfig()


class StudentPrompt:
    """Templates, tools and answer format of the student, with the tool list read once."""

    def __init__(self, templates: TemplateConfig, tools: ToolConfig):
        self.templates = templates
        self.tools = tools
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


def load_student_prompt(path: str | Path = DEFAULT_PROMPT_CONFIG, style: Style | None = None) -> StudentPrompt:
    """Read the prompt file; `style` (xml, tool, ticks) overrides its parse function."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SFTError(f"{path}: cannot read the student prompt config ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SFTError(f"{path}: invalid YAML ({exc})") from None
    agent = data.get("agent") if isinstance(data, dict) else None
    if not isinstance(agent, dict):
        raise SFTError(f"{path}: key 'agent': expected a mapping with 'templates' and 'tools'")
    try:
        sections = _PromptSections.model_validate(agent)
    except ValidationError as exc:
        raise SFTError(f"{path}: {describe_validation_error(exc, 'agent')}") from None
    tools = sections.tools
    if style is not None:
        parser = TypeAdapter(ParseFunctionConfig).validate_python({"type": STYLE_PARSERS[style]})
        tools = tools.model_copy(update={"parse_function": parser})
    return StudentPrompt(sections.templates, tools)
