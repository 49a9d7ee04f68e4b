"""`agent.tools`: which bundles the model gets, how its output is parsed, and how long commands may run."""

from __future__ import annotations

import json
import re
import shlex
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sweagent.tools.bundles import Bundle
from sweagent.tools.commands import BASH_COMMAND, Command
from sweagent.tools.parsing import ParseFunctionConfig, XMLFunctionCallingParser
from sweagent.tools.tool_packages import provide
from sweagent.utils.staging import stage

if TYPE_CHECKING:
    from sweagent.environment.swe_env import SWEEnv

TOOLS_DIR = "/root/tools"
REGISTRY_PATH = "/root/.swe-agent-env"
REGISTRY_BUNDLE = Path("tools/registry")
STATE_PATH = "/root/state.json"
"""Where the bundles' state commands write the template variables they report (SWE-agent's file)."""
SUBMISSION_MARKER = "<<SWE_AGENT_SUBMISSION>>"
EXIT_FORFEIT_TOKEN = "###SWE-AGENT-EXIT-FORFEIT###"
"""Printed by `exit_forfeit` (tools/forfeit): the run ends with exit_forfeit."""
RETRY_TOKENS = ("###SWE-AGENT-RETRY-WITH-OUTPUT###", "###SWE-AGENT-RETRY-WITHOUT-OUTPUT###")
"""Markers SWE-agent tools may print; OEC shows the output without them."""


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
    filter: ToolFilterConfig = Field(default_factory=ToolFilterConfig)
    """Interactive commands refused before they run."""
    submit_command: str = "submit"
    """The command that submits (SWE-agent's key; a submission is recognised by the marker submit prints)."""
    submit_command_end_name: str | None = None
    """Like a command's `end_name`, for a multi-line submit command."""
    multi_line_command_endings: dict[str, str] = {}
    """Extra multi-line commands: name -> the line that ends its input (bundles' `end_name` are added to these)."""
    reset_commands: list[str | list[str]] = []
    """Shell commands run in the session after the tools are installed (a list is joined with ' && ')."""
    install_timeout: float = 300
    """Seconds each bundle's install.sh and the reset commands may run."""
    format_error_template: str | None = None
    """Shown after a malformed answer; default: the parse function's own `format_error_template`."""

    @model_validator(mode="before")
    @classmethod
    def _retired_keys(cls, data: Any) -> Any:
        """`max_observation_chars` (an OEC key until now) was a second truncation knob: observations are now recorded as
        the environment returned them and cut for the model at `agent.templates.max_observation_length` (SWE-agent's
        one knob). It is still accepted, so older configs and every recorded run config load; it does nothing."""
        if isinstance(data, dict) and "max_observation_chars" in data:
            data = {key: value for key, value in data.items() if key != "max_observation_chars"}
        return data

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
        return [command.function_schema(self.env_variables) for command in self.commands]

    @property
    def state_commands(self) -> list[str]:
        return [bundle.state_command for bundle in self.bundles if bundle.state_command]

    def get_state(self, env: SWEEnv) -> dict[str, Any]:
        """Run the bundles' state commands and read what they wrote (template variables such as open_file, diff).

        The file is written by commands the model can also run, so anything but a JSON object of strings is
        ignored rather than trusted."""
        if not self.state_commands:
            return {}
        for command in self.state_commands:
            env.communicate(command, timeout=self.execution_timeout)
        try:
            state = json.loads(env.read_file(STATE_PATH))
        except Exception:
            return {}
        if not isinstance(state, dict):
            return {}
        return {str(key): value for key, value in state.items() if isinstance(value, str)}

    def guard_multiline_input(self, action: str) -> str:
        """Feed a multi-line command typed as text (`edit 1:3`, lines, `end_of_edit`) its lines through a heredoc,
        as SWE-agent does, so the command reads them from stdin; other actions pass through unchanged."""
        endings = {**self.multi_line_command_endings,
                   **{c.name: c.end_name for c in self.commands if c.end_name}}
        if self.submit_command_end_name:
            endings[self.submit_command] = self.submit_command_end_name
        if not endings:
            return action
        lines = action.split("\n")
        for index, line in enumerate(lines):
            words = line.split()
            end_name = endings.get(words[0]) if words else None
            if end_name and f"<< '{end_name}'" not in line and end_name in (l.strip() for l in lines[index + 1:]):
                lines[index] = f"{line.rstrip()} << '{end_name}'"
        return "\n".join(lines)

    def command_docs(self) -> str:
        """Tool documentation for the system prompt of text-parsed models."""
        blocks = []
        for command in self.commands:
            lines = [f"{command.name}:", f"  docstring: {command.describe(self.env_variables).strip()}"]
            if command.signature:
                lines.append(f"  signature: {command.signature.strip()}")
            for arg in command.arguments:
                req = "required" if arg.required else "optional"
                enum = f" (one of {', '.join(arg.enum)})" if arg.enum else ""
                lines.append(f"  - {arg.name} ({arg.type}, {req}){enum}: {arg.description}")
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def _installed_bundles(self) -> list[Bundle]:
        """The configured bundles, with `registry` first when a config leaves it out (SWE-agent's 07_thought_action
        configs do): the other bundles keep their state in it and call its `_read_env`/`_write_env`."""
        if any(bundle.name == "registry" for bundle in self.bundles) or not self.bundles:
            return list(self.bundles)
        return [Bundle(path=REGISTRY_BUNDLE), *self.bundles]

    def install(self, env: SWEEnv, working_dir: str) -> None:
        """Copy the bundles, the registry and an empty state into the environment, put the bundles' bin/ on PATH
        and export the variables; then source the install scripts. One upload and one command (plus one per install
        script) instead of a round trip for every bundle and setting: this runs before a rollout's first step."""
        bundles = self._installed_bundles()
        packages = tuple(sorted({name for bundle in bundles for name in bundle.python_packages}))
        registry = {"ROOT": working_dir, **provide(env, packages), "PROBLEM_STATEMENT": env.problem.problem_statement,
                    **self.registry_variables}
        with tempfile.TemporaryDirectory(prefix="oec-tools-") as staging:
            home = Path(staging) / "root"
            for bundle in bundles:
                stage(bundle.path, home / "tools" / bundle.name)
            (home / Path(REGISTRY_PATH).name).write_text(json.dumps(registry))
            (home / Path(STATE_PATH).name).write_text("{}")
            env.upload(home, str(Path(REGISTRY_PATH).parent))
        exports = {**{k: str(v) for k, v in self.env_variables.items()}, "ROOT": working_dir}
        bin_dirs = ":".join(f"{TOOLS_DIR}/{bundle.name}/bin" for bundle in bundles)
        setup = ["export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in exports.items())]
        if bin_dirs:
            setup.append(f"export PATH={bin_dirs}:$PATH")
        cd = f"cd {shlex.quote(working_dir)}"
        env.communicate(f"chmod +x {TOOLS_DIR}/*/bin/* 2>/dev/null; " + " && ".join([*setup, cd]), check=True)
        scripts = [bundle for bundle in bundles if (bundle.path / "install.sh").is_file()]
        for bundle in scripts:  # after PATH and registry are set: install scripts call _write_env
            # sourced, as SWE-agent does, so what an install script exports stays in the session
            env.communicate(f"cd {TOOLS_DIR}/{bundle.name} && source install.sh", check=True, timeout=self.install_timeout)
        for command in self.reset_commands:
            line = command if isinstance(command, str) else " && ".join(command)
            env.communicate(line, check=True, timeout=self.install_timeout)
        if scripts or self.reset_commands:
            env.communicate(cd, check=True)

