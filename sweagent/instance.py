"""Task instances in SWE-smith's format, plus the `source` of the pristine tree for runs without docker."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sweagent.ids import InstanceId, check_id
from sweagent.utils.errors import describe_validation_error
from sweagent.utils.errors import OECError


class InstanceError(OECError):
    """An instance file or id that cannot be used; the message names the file, the key and what was expected."""


_NAME = r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$"
"""Package names, versions and file names as PyPI spells them: nothing that climbs out of a folder."""


class PyPISdistSource(BaseModel):
    """The pristine tree is a PyPI source distribution, pinned by version and sha256."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["pypi_sdist"] = "pypi_sdist"
    package: str = Field(pattern=_NAME)
    """PyPI project name; with `version` it names cache folders, so it cannot hold `/` or start with `.`."""
    version: str = Field(pattern=_NAME)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    """The sdist's sha256 as 64 hex digits; a tree is only ever built from an archive with exactly this hash."""
    filename: str | None = Field(default=None, pattern=_NAME)
    """Name of the sdist file; when absent the first sdist pip offers for package==version is used."""


class TaskInstance(BaseModel):
    """One bug to fix. Extra keys (e.g. SWE-smith's `created_at`) are kept as they are."""

    model_config = ConfigDict(extra="allow")

    instance_id: InstanceId
    repo: str = ""
    patch: str = ""
    """The bug, as a diff against the pristine tree."""
    FAIL_TO_PASS: list[str] = Field(default_factory=list)
    PASS_TO_PASS: list[str] = Field(default_factory=list)
    problem_statement: str = ""
    image_name: str | None = None
    source: PyPISdistSource | None = None

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", "source", mode="before")
    @classmethod
    def _decode_json_text(cls, value: Any) -> Any:
        """SWE-bench/SWE-smith datasets on the Hub store these fields as JSON-encoded strings."""
        if isinstance(value, str) and value.strip().startswith(("[", "{")):
            return json.loads(value)
        return value


def load_instances(path: str | Path) -> list[TaskInstance]:
    """Read a SWE-smith JSON list or JSONL file of instances, and the repo_profiles.yaml next to it if there is one."""
    path = Path(path)
    if not path.is_file():
        raise InstanceError(f"{path}: instance file does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InstanceError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InstanceError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, list):
        raise InstanceError(f"{path}: expected a JSON list of instance objects")
    from sweagent.environment.task_repos.profiles import RepoProfileError, register_profiles_near  # imports this module

    try:
        register_profiles_near(path)
    except RepoProfileError as exc:
        raise InstanceError(str(exc)) from None
    return parse_instances(rows, str(path))


def parse_instances(rows: Iterable[Any], source: str) -> list[TaskInstance]:
    """Validate instance rows (from a file or a dataset); the error names the source, the row and the key.

    An id listed twice is refused: its rollouts would share one output folder and overwrite each other.
    """
    instances = []
    rows_by_id: dict[str, int] = {}
    for index, row in enumerate(rows):
        try:
            instance = TaskInstance.model_validate(row)
        except ValidationError as exc:
            raise InstanceError(f"{source}: instance {index}: {describe_validation_error(exc)}") from None
        first = rows_by_id.setdefault(instance.instance_id, index)
        if first != index:
            raise InstanceError(f"{source}: instance_id '{instance.instance_id}' is listed twice (instances {first} and {index})")
        instances.append(instance)
    return instances


def find_instance(path: str | Path, instance_id: str) -> TaskInstance:
    check_id(instance_id, f"instance_id to look up in {path}", InstanceError)
    for instance in load_instances(path):
        if instance.instance_id == instance_id:
            return instance
    raise InstanceError(f"{path}: no instance with instance_id '{instance_id}'")
