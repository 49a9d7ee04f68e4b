"""The failure taxonomy the judge sorts into, read from YAML so researchers can change it without code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from failure_categorization.errors import CategorizationError
from sweagent import REPO_ROOT

DEFAULT_TAXONOMY = REPO_ROOT / "config" / "failure_taxonomy.yaml"
ANALYSIS_ERROR = "analysis_error"
"""Reserved category of a trajectory the judge could not be asked about (API failure after retries)."""


class ExitStatusNote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    meaning: str
    """What the exit status says happened, in words the judge understands."""
    hint: str = ""
    """Where the judge should look first for this kind of failure."""


class Taxonomy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    categories: dict[str, str]
    """Category name → what it means; the judge must answer with one of these names."""
    fallback_category: str = "other"
    """Where answers outside `categories` end up (they are also flagged)."""
    exit_statuses: dict[str, ExitStatusNote] = Field(default_factory=dict)
    """Exit status → meaning and hint shown to the judge."""

    @field_validator("categories")
    @classmethod
    def _check_categories(cls, categories: dict[str, str]) -> dict[str, str]:
        if not categories:
            raise ValueError("expected at least one category")
        if ANALYSIS_ERROR in categories:
            raise ValueError(f"'{ANALYSIS_ERROR}' is reserved for failed judge calls and cannot be a category")
        return categories

    @field_validator("fallback_category")
    @classmethod
    def _check_fallback(cls, fallback: str, info: ValidationInfo) -> str:
        if fallback not in info.data.get("categories", {fallback: ""}):
            raise ValueError(f"'{fallback}' must be one of the categories")
        return fallback

    @property
    def names(self) -> list[str]:
        return list(self.categories)

    def note_for(self, exit_status: str) -> ExitStatusNote | None:
        return self.exit_statuses.get(exit_status)

    def fingerprint(self) -> str:
        """Changes whenever anything the judge sees of the taxonomy changes."""
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()[:16]


def load_taxonomy(path: str | Path = DEFAULT_TAXONOMY) -> Taxonomy:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CategorizationError(f"{path}: taxonomy file does not exist") from None
    except yaml.YAMLError as exc:
        raise CategorizationError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise CategorizationError(f"{path}: expected a mapping with a 'categories' key")
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        raise CategorizationError(f"{path}: key '{where}': {message}") from None
