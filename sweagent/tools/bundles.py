"""Tool bundles: a folder with `config.yaml` (the commands the model sees) and `bin/` (what runs in the environment)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from sweagent.tools.commands import Command
from sweagent.utils.errors import describe_validation_error
from sweagent.utils.errors import OECError
from sweagent.utils.yaml_text import load_yaml
from sweagent import REPO_ROOT



class BundleError(OECError):
    """A bundle folder or its config.yaml that cannot be used."""


class Bundle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path
    """Bundle folder; relative paths are resolved against the OEC repository (e.g. `tools/edit_anthropic`)."""
    hidden_tools: list[str] = []
    """Commands of the bundle that are installed but not shown to the model."""

    @field_validator("path")
    @classmethod
    def _resolve(cls, path: Path) -> Path:
        return path if path.is_absolute() else REPO_ROOT / path

    @property
    def name(self) -> str:
        return self.path.name

    def commands(self) -> list[Command]:
        return list(_read_commands(self.path, tuple(self.hidden_tools)))

    @property
    def python_packages(self) -> list[str]:
        """Packages its helpers import, given to the tool interpreter, never the task's (sweagent/tools/tool_packages.py)."""
        return list(_read_config(self.path).get("python_packages") or [])

    @property
    def state_command(self) -> str | None:
        """Run after every action; it writes /root/state.json, whose keys become template variables."""
        return _read_config(self.path).get("state_command")


@lru_cache(maxsize=64)
def _read_config(path: Path) -> dict:
    config_file = path / "config.yaml"
    if not config_file.is_file():
        raise BundleError(f"{config_file}: tool bundle has no config.yaml (key 'agent.tools.bundles.path')")
    try:
        data = load_yaml(config_file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise BundleError(f"{config_file}: invalid YAML ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("state_command") or "", str):
        raise BundleError(f"{config_file}: expected a mapping with 'tools' and an optional 'state_command' string")
    return data


@lru_cache(maxsize=64)
def _read_commands(path: Path, hidden_tools: tuple[str, ...]) -> tuple[Command, ...]:
    """Parsed once per process: the loop asks for the commands on every step."""
    config_file = path / "config.yaml"
    tools = _read_config(path).get("tools") or {}
    if not isinstance(tools, dict):
        raise BundleError(f"{config_file}: key 'tools': expected a mapping of command name to definition")
    commands = []
    for name, spec in tools.items():
        if name in hidden_tools:
            continue
        try:
            commands.append(Command(name=name, **(spec or {})))
        except ValidationError as exc:
            raise BundleError(f"{config_file}: {describe_validation_error(exc, f'tools.{name}')}") from None
    return tuple(commands)
