"""`agent.tools`: which bundles the model gets, how its output is parsed, and how long commands may run."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sweagent.tools.bundles import Bundle
from sweagent.tools.commands import BASH_COMMAND, Command
from sweagent.tools.parsing import ParseFunctionConfig, XMLFunctionCallingParser

if TYPE_CHECKING:
    from sweagent.environment.swe_env import SWEEnv

TOOLS_DIR = "/root/tools"
REGISTRY_PATH = "/root/.swe-agent-env"
SUBMISSION_MARKER = "<<SWE_AGENT_SUBMISSION>>"


class ToolFilterConfig(BaseModel):
    """Commands that would hang a non-interactive shell are refused before they run."""

    model_config = ConfigDict(extra="forbid")

    blocklist: list[str] = ["vim", "vi", "emacs", "nano", "nohup", "gdb", "less", "tail -f", "python -m venv"]
    """Commands refused when the action starts with them."""
    blocklist_standalone: list[str] = ["python", "python3", "ipython", "bash", "sh", "/bin/bash", "/bin/sh", "vim", "nano", "su"]
    """Commands refused when they are the whole action (they would open an interactive prompt)."""
    block_unless_regex: dict[str, str] = {"radare2": r"\b(?:radare2)\b.*\s+-c\s+.*", "r2": r"\b(?:radare2)\b.*\s+-c\s+.*"}
    """Commands refused unless the action matches the regex."""
    blocklist_error_template: str = "Operation '{{action}}' is not supported by this environment."
    """Observation shown when an action is refused."""

    def is_blocked(self, action: str) -> bool:
        stripped = action.strip()
        if any(stripped.startswith(f"{word} ") or stripped == word for word in self.blocklist):
            return True
        if stripped in self.blocklist_standalone:
            return True
        first = stripped.split(" ", 1)[0]
        return first in self.block_unless_regex and not re.search(self.block_unless_regex[first], stripped)


class ToolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bundles: list[Bundle] = Field(default_factory=list)
    """Tool bundles installed into the environment, e.g. `- path: tools/edit_anthropic`."""
    enable_bash_tool: bool = True
    """Offer `bash` as a tool (always true in practice; the model runs shell commands through it)."""
    parse_function: ParseFunctionConfig = Field(default_factory=XMLFunctionCallingParser)
    """How actions are read from the model's output: function_calling, xml_function_calling or thought_action."""
    env_variables: dict[str, Any] = {"PAGER": "cat", "MANPAGER": "cat", "LESS": "-R", "PIP_PROGRESS_BAR": "off", "TQDM_DISABLE": "1", "GIT_PAGER": "cat"}
    """Exported in the shell session before the first action."""
    registry_variables: dict[str, Any] = {}
    """Values for the tools' registry, e.g. SUBMIT_REVIEW_MESSAGES for review_on_submit_m."""
    execution_timeout: float = 30
    """Seconds one action may run before it is interrupted."""
    max_consecutive_execution_timeouts: int = 3
    """After this many timeouts in a row the run ends with exit_command_timeout."""
    total_execution_timeout: float = 1800
    """Seconds of command execution an instance may use in total."""
    max_observation_chars: int = 100_000
    """Longer observations are cut (with a note) before they reach the model."""
    filter: ToolFilterConfig = Field(default_factory=ToolFilterConfig)
    """Interactive commands refused before they run."""

    @model_validator(mode="after")
    def _unique_command_names(self) -> ToolConfig:
        seen: dict[str, str] = {"bash": "the bash tool"} if self.enable_bash_tool else {}
        for bundle in self.bundles:
            for command in bundle.commands():
                if command.name in seen:
                    raise ValueError(f"command '{command.name}' is defined twice ({seen[command.name]} and {bundle.path.name}); keep one bundle")
                seen[command.name] = bundle.path.name
        return self

    @property
    def commands(self) -> list[Command]:
        commands = [BASH_COMMAND] if self.enable_bash_tool else []
        for bundle in self.bundles:
            commands.extend(bundle.commands())
        return commands

    @property
    def use_function_calling(self) -> bool:
        return self.parse_function.type == "function_calling"

    def tool_schemas(self) -> list[dict[str, Any]]:
        return [command.function_schema() for command in self.commands]

    def command_docs(self) -> str:
        """Tool documentation for the system prompt of text-parsed models."""
        blocks = []
        for command in self.commands:
            lines = [f"{command.name}:", f"  docstring: {(command.docstring or '').strip()}"]
            if command.signature:
                lines.append(f"  signature: {command.signature.strip()}")
            for arg in command.arguments:
                req = "required" if arg.required else "optional"
                enum = f" (one of {', '.join(arg.enum)})" if arg.enum else ""
                lines.append(f"  - {arg.name} ({arg.type}, {req}){enum}: {arg.description}")
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def install(self, env: SWEEnv, working_dir: str) -> None:
        """Copy the bundles into the environment, put their bin/ on PATH and write the registry."""
        env.communicate(f"mkdir -p {TOOLS_DIR}", check=True)
        bin_dirs = []
        for bundle in self.bundles:
            target = f"{TOOLS_DIR}/{bundle.name}"
            env.upload(bundle.path, target)
            env.communicate(f"chmod +x {target}/bin/* 2>/dev/null; true")
            bin_dirs.append(f"{target}/bin")
            if (bundle.path / "install.sh").is_file():
                env.communicate(f"cd {target} && bash install.sh", check=True, timeout=300)
        registry = {"ROOT": working_dir, **self.registry_variables}
        env.write_file(REGISTRY_PATH, json.dumps(registry))
        exports = {**{k: str(v) for k, v in self.env_variables.items()}, "ROOT": working_dir}
        env.set_env_variables(exports)
        if bin_dirs:
            env.communicate(f"export PATH={':'.join(bin_dirs)}:$PATH", check=True)
