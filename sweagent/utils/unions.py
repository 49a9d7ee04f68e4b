"""Discriminated unions whose `type` key may be left out, as SWE-agent configs do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def type_or(default: str) -> Callable[[Any], str]:
    """A pydantic discriminator reading `type` from a dict or a model, `default` when it is missing."""

    def discriminate(value: Any) -> str:
        if isinstance(value, dict):
            return value.get("type", default)
        return getattr(value, "type", default)

    return discriminate
