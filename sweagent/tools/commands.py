"""What a tool looks like to the model: its name, docstring and arguments (read from a bundle's config.yaml)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Argument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    type: str = "string"
    """JSON-schema type: string, integer, number, boolean or array."""
    description: str = ""
    required: bool = False
    enum: list[str] | None = None
    items: dict[str, Any] | None = None
    """Item schema when `type` is array."""
    argument_format: str = "{{value}}"
    """SWE-agent's key, accepted for its configs; OEC builds command lines by one rule (sweagent/tools/parsing.py)."""


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    docstring: str | None = None
    signature: str | None = None
    """How the command is typed in a shell, e.g. `str_replace_editor <command> <path> [<file_text>]`."""
    arguments: list[Argument] = Field(default_factory=list)
    end_name: str | None = None
    """For a multi-line command typed as text (`edit 1:3` ... `end_of_edit`): the line that ends its input, which
    the command then reads from a heredoc."""

    def function_schema(self, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The OpenAI tool schema used for native function calling."""
        properties: dict[str, Any] = {}
        for arg in self.arguments:
            prop: dict[str, Any] = {"type": arg.type, "description": arg.description}
            if arg.enum:
                prop["enum"] = arg.enum
            if arg.items:
                prop["items"] = arg.items
            properties[arg.name] = prop
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.describe(variables or {}),
                "parameters": {
                    "type": "object",
                    "properties": properties,
                    "required": [a.name for a in self.arguments if a.required],
                },
            },
        }


    def describe(self, variables: dict[str, Any]) -> str:
        """The docstring with `{NAME}` filled from the tools' env_variables (`moves the window up {WINDOW} lines`)."""
        text = self.docstring or ""
        for name, value in variables.items():
            text = text.replace(f"{{{name}}}", str(value))
        return text


BASH_COMMAND = Command(
    name="bash",
    docstring="runs the given command directly in bash",
    signature="<command>",
    arguments=[Argument(name="command", type="string", description="The bash command to execute.", required=True)],
)
