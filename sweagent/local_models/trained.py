"""Trained students that `sweagent serve-local start NAME` serves by name: GGUF files registered by the trainer.

A record (`$OEC_CACHE/models/trained/<name>.json`) names a base GGUF and, for a LoRA round, the GGUF adapter that
llama.cpp applies on top of it; `oec.training.export` writes them. The served model alias is the name, so a config
asks for `openai/<name>` at the URL `serve-local start <name> --export` prints as `OEC_<NAME>_API_BASE`.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sweagent.local_models.catalog import LocalModelError, cache_root
from sweagent.utils.files import write_json_atomic

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
"""Lower-case letters, digits and `_`: the name is a file name, a model alias and part of an environment variable."""


class TrainedModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    model_path: str
    """The GGUF llama.cpp loads: the base model for a LoRA adapter, else the fine-tuned model itself."""
    lora_path: str | None = None
    """A GGUF LoRA adapter applied on top of `model_path`, or None."""
    trained_in: str
    """The training output folder (its manifest.json says on what data and how)."""


def _registry() -> Path:
    return cache_root() / "models" / "trained"


def register_trained(model: TrainedModel) -> Path:
    """Record (or replace) a trained model; returns the record's path."""
    path = _registry() / f"{model.name}.json"
    write_json_atomic(path, model.model_dump())
    return path


def trained_names() -> list[str]:
    return sorted(path.stem for path in _registry().glob("*.json"))


def load_trained(name: str) -> TrainedModel | None:
    path = _registry() / f"{name}.json"
    if not path.is_file():
        return None
    try:
        model = TrainedModel.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise LocalModelError(f"{path}: unreadable trained-model record ({exc}); retrain or delete it") from None
    for file in filter(None, (model.model_path, model.lora_path)):
        if not Path(file).is_file():
            raise LocalModelError(f"{path}: {file} no longer exists; retrain {name} or delete the record")
    return model
