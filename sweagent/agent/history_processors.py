"""History processors: rewrite the message list before each query (never the recorded history itself)."""

from __future__ import annotations

import copy
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class LastNObservations(BaseModel):
    """Elide all but the last `n` observations, keeping prompts short on long trajectories."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["last_n_observations"] = "last_n_observations"
    n: int = 5
    """How many of the most recent observations stay in full."""
    polling: int = Field(1, ge=1)
    """The elided prefix grows only every `polling` observations (between n and n+polling stay), so a provider's
    prompt cache is invalidated less often."""
    always_remove_output_for_tags: set[str] = {"remove_output"}
    """Observations whose `tags` hold one of these are always elided."""
    always_keep_output_for_tags: set[str] = {"keep_output"}
    """Observations whose `tags` hold one of these are never elided."""

    def __call__(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        observation_indices = [i for i, m in enumerate(messages)
                               if m.get("message_type") == "observation" and not m.get("is_demo")]
        last = max(0, len(observation_indices) // self.polling * self.polling - self.n)
        # The first observation carries the task, so it is never elided (nor are demonstrations).
        to_elide = set(observation_indices[1:last])
        result = []
        for index, message in enumerate(messages):
            tags = set(message.get("tags") or [])
            keep = (index not in to_elide or tags & self.always_keep_output_for_tags) and not tags & self.always_remove_output_for_tags
            result.append(message if keep else {**message, "content": _elided(message)})
        return result


def _elided(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return f"Old environment output: ({len(text.splitlines())} lines omitted)"


class CacheControl(BaseModel):
    """Mark the last user/tool messages for provider-side prompt caching (Anthropic's `cache_control`)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["cache_control"] = "cache_control"
    last_n_messages: int = 2
    """How many of the latest user/tool messages get a cache breakpoint."""
    last_n_messages_offset: int = 0
    """Skip this many of the latest messages before marking (e.g. when a later processor rewrites them)."""
    tagged_roles: list[str] = ["user", "tool"]
    """Roles whose messages may be marked."""

    def __call__(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        result = copy.deepcopy(messages)
        marked = 0
        for position, message in enumerate(reversed(result)):
            if marked >= self.last_n_messages:
                break
            if position < self.last_n_messages_offset or message.get("role") not in self.tagged_roles:
                continue
            content = message.get("content")
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            if content:
                content[-1] = {**content[-1], "cache_control": {"type": "ephemeral"}}
                message["content"] = content
            marked += 1
        return result


class RemoveRegex(BaseModel):
    """Cut text matching regexes out of older messages, e.g. the cumulative `<diff>` a diff_state template adds."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["remove_regex"] = "remove_regex"
    remove: list[str] = ["<diff>.*</diff>"]
    """Patterns (Python regex, `.` matches newlines) removed from message text."""
    keep_last: int = 0
    """The latest this many messages stay unchanged."""

    def __call__(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        cutoff = len(messages) - self.keep_last
        return [_without_patterns(message, self.remove) if index < cutoff else message for index, message in enumerate(messages)]


def _without_patterns(message: dict[str, Any], patterns: list[str]) -> dict[str, Any]:
    def clean(text: str) -> str:
        for pattern in patterns:
            text = re.sub(pattern, "", text, flags=re.DOTALL)
        return text

    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": clean(content)}
    if isinstance(content, list):
        parts = [{**part, "text": clean(part["text"])} if isinstance(part, dict) and "text" in part else part for part in content]
        return {**message, "content": parts}
    return message


class DefaultHistoryProcessor(BaseModel):
    """Leaves the messages as they are (SWE-agent's `default`)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["default"] = "default"

    def __call__(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return messages


HistoryProcessorConfig = Annotated[LastNObservations | CacheControl | RemoveRegex | DefaultHistoryProcessor, Field(discriminator="type")]


def apply_history_processors(processors: list[HistoryProcessorConfig], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for processor in processors:
        messages = processor(messages)
    return messages
