"""Demonstrations: recorded trajectories shown to the model before its task, as SWE-agent 1.x does.

`templates.demonstrations` names `.traj` files (JSON) or SWE-agent's demo `.yaml` files; both carry a `history`.
With `put_demos_in_history` their messages (system prompt left out) go into the history as recorded; otherwise
each becomes one user message rendered with `demonstration_template`. Either way the messages are marked
`is_demo`, so the trajectory tells them apart from the rollout's own turns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from sweagent.agent.templates import TemplateConfig, TemplateError, render
from sweagent.utils.yaml_text import load_yaml

DEMO_KEYS = ("role", "content", "tool_calls", "tool_call_ids", "thought", "action", "message_type")
"""What a demonstration message keeps (its own `agent` name and stats stay in the file it came from)."""


def load_demonstration_history(path: Path) -> list[dict[str, Any]]:
    """The `history` of a demonstration file; a missing or unreadable file is one line naming it."""
    try:
        text = path.read_text()
        data = load_yaml(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except FileNotFoundError:
        raise TemplateError(f"{path}: demonstration file does not exist (key 'agent.templates.demonstrations')") from None
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise TemplateError(f"{path}: unreadable demonstration ({type(exc).__name__}: {str(exc)[:200]})") from None
    history = data.get("history") if isinstance(data, dict) else None
    if not isinstance(history, list) or not all(isinstance(m, dict) and "role" in m for m in history):
        raise TemplateError(f"{path}: key 'history': expected a list of messages with a role")
    return history


def demonstration_messages(templates: TemplateConfig, agent_name: str) -> list[dict[str, Any]]:
    """The messages that stand between the system prompt and the task, in the order of `demonstrations`."""
    if templates.demonstrations and templates.demonstration_template is None and not templates.put_demos_in_history:
        raise TemplateError("key 'agent.templates.demonstrations': needs demonstration_template or put_demos_in_history: true")
    messages: list[dict[str, Any]] = []
    for path in templates.demonstrations:
        history = [m for m in load_demonstration_history(path) if m["role"] != "system"]
        if templates.put_demos_in_history:
            for message in history:
                kept = {key: message[key] for key in DEMO_KEYS if message.get(key) is not None}
                messages.append({"message_type": "demonstration", **kept, "agent": agent_name, "is_demo": True})
            continue
        text = "\n".join(_text(m.get("content")) for m in history)
        assert templates.demonstration_template is not None
        messages.append({"role": "user", "content": render(templates.demonstration_template, demonstration=text),
                         "agent": agent_name, "message_type": "demonstration", "is_demo": True})
    return messages


def _text(content: Any) -> str:
    """A message's text, also when it is a list of content parts (as cache-controlled messages are)."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""
