"""`agent.model`: the union of model configs (picked by `type`, default litellm) and the factory that builds them."""

from __future__ import annotations

from typing import Annotated

from pydantic import Discriminator, Tag

from sweagent.agent.oracle_model import OracleModel, OracleModelConfig
from sweagent.agent.switching_model import SwitchingModelConfig
from sweagent.agent.models import LiteLLMModel, LiteLLMModelConfig, Model, ReplayModel, ReplayModelConfig
from sweagent.utils.unions import type_or

ModelConfig = Annotated[
    Annotated[LiteLLMModelConfig, Tag("litellm")]
    | Annotated[ReplayModelConfig, Tag("replay")]
    | Annotated[SwitchingModelConfig, Tag("switching")]
    | Annotated[OracleModelConfig, Tag("oracle")],
    Discriminator(type_or("litellm")),  # SWE-agent configs omit `type` for litellm models
]


def get_model(config: LiteLLMModelConfig | ReplayModelConfig | OracleModelConfig, instance_id: str | None = None) -> Model:
    if isinstance(config, ReplayModelConfig):
        return ReplayModel(config, instance_id)
    if isinstance(config, OracleModelConfig):
        if instance_id is None:
            raise ValueError("agent.model: the oracle needs a task instance (it knows the instance's fix)")
        return OracleModel(config, instance_id)
    return LiteLLMModel(config)
