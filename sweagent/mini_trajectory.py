"""mini-swe-agent trajectories (`<id>/<id>.traj.json`) in SWE-agent 1.x's layout, so every stage reads them.

mini-swe-agent keeps a flat list of chat messages plus an `info` dict (`trajectory_format` `mini-swe-agent-1`: text
actions in a ```bash block; `mini-swe-agent-1.1`: native tool calls and a final `exit` message). Here each assistant
message that carries an action becomes one step, its observation the tool/user messages that answer its actions;
an answer without an action (a format error) stays in the history but is no step, as SWE-agent's re-queries are
not. The step that ran mini's submit sentinel becomes SWE-agent's `submit` (its command kept in `extra_info`),
so the SFT stage teaches the student its own submit tool. Everything here works on plain dicts: `trajectory.py`
validates the result like any other `.traj`.
"""

from __future__ import annotations

import re
from typing import Any

FORMAT_PREFIX = "mini-swe-agent-1"
SUBMIT_SENTINEL = "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"
DEFAULT_ACTION_REGEX = r"```bash\s*\n(.*?)\n```"
"""mini-swe-agent 1.x's default; a trajectory's own `info.config.agent.action_regex` wins."""
EXIT_STATUSES = {
    "Submitted": "submitted",
    "LimitsExceeded": "exit_cost",  # mini's step and cost limits, as SWE-agent's call and cost limits
    "TimeExceeded": "exit_cost",
    "RepeatedFormatError": "exit_format",
    "ContextWindowExceededError": "exit_context",
}
"""mini's exit statuses in SWE-agent's words; any other (an exception's class name) is `exit_error`."""
_MESSAGE_TYPES = {"system": "system_prompt", "assistant": "action"}


def is_mini_swe_agent(data: Any) -> bool:
    """A mini-swe-agent trajectory: a `messages` list instead of SWE-agent's `trajectory` list."""
    return isinstance(data, dict) and "trajectory" not in data and isinstance(data.get("messages"), list)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def _get(mapping: Any, *keys: str) -> Any:
    """`mapping[k1][k2]...`, or None where a level is missing or not a dict."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _commands(message: dict[str, Any], content: str, action_regex: str) -> list[str] | None:
    """The commands an assistant message ran, or None when it ran none (a format error)."""
    actions = _get(message, "extra", "actions")
    if isinstance(actions, list) and actions:
        commands = [action.get("command") for action in actions if isinstance(action, dict)]
        return [c for c in commands if isinstance(c, str)] or None
    if message.get("tool_calls"):
        return None
    found = re.findall(action_regex, content, re.DOTALL)
    return [found[0].strip()] if len(found) == 1 else None


def _thought(content: str, action_regex: str) -> str:
    return re.sub(action_regex, "", content, count=1, flags=re.DOTALL).strip()


def _history_message(message: dict[str, Any], role: str, content: str) -> dict[str, Any]:
    kept = {key: message[key] for key in ("tool_calls", "tool_call_id") if message.get(key)}
    return {"role": role, "content": content, "agent": "main", "message_type": _MESSAGE_TYPES.get(role, "observation"), **kept}


def _steps_and_history(messages: list[Any], action_regex: str, model_name: str) -> tuple[list[dict], list[dict]]:
    steps: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    awaiting = 0  # observation messages the latest step still expects (one per command)
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ValueError(f"messages[{index}]: expected an object with a 'role'")
        role, content = message["role"], _text(message.get("content"))
        if role == "exit":  # mini-swe-agent 1.1's closing message: its content is info.submission
            continue
        history.append(_history_message(message, role, content))
        if role == "assistant":
            commands = _commands(message, content, action_regex)
            awaiting = len(commands) if commands else 0
            if commands:
                thought = content.strip() if message.get("tool_calls") else _thought(content, action_regex)
                steps.append({"action": "\n".join(commands), "observation": "", "response": content, "thought": thought,
                              "model_name": model_name})
        elif awaiting and role in ("user", "tool") and not _get(message, "extra", "interrupt_type"):
            step = steps[-1]
            step["observation"] = f"{step['observation']}\n{content}" if step["observation"] else content
            awaiting -= 1
    return steps, history


def _mark_submit(steps: list[dict[str, Any]], submission: str | None) -> None:
    """The last step, when it ran mini's submit sentinel, is SWE-agent's `submit` whose output is the patch."""
    if not steps or SUBMIT_SENTINEL not in steps[-1]["action"]:
        return
    step = steps[-1]
    step["extra_info"] = {"mini_swe_agent_command": step["action"]}
    step["action"] = "submit"
    step["observation"] = step["observation"] or (submission or "")


def to_swe_agent_layout(data: dict[str, Any]) -> dict[str, Any]:
    """The trajectory as a SWE-agent 1.x `.traj` dict; raises ValueError for a format or shape it cannot read."""
    trajectory_format = data.get("trajectory_format")
    if trajectory_format is not None and not str(trajectory_format).startswith(FORMAT_PREFIX):
        raise ValueError(f"trajectory_format {trajectory_format!r} is not one this reader knows ({FORMAT_PREFIX}.x)")
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    regex = _get(info, "config", "agent", "action_regex")
    model_name = _get(info, "config", "model", "model_name")
    steps, history = _steps_and_history(data["messages"], regex if isinstance(regex, str) else DEFAULT_ACTION_REGEX,
                                        model_name if isinstance(model_name, str) else "mini-swe-agent")
    raw_status = info.get("exit_status")
    submission = info.get("submission") if isinstance(info.get("submission"), str) else None
    if raw_status == "Submitted":
        _mark_submit(steps, submission)
    stats = info.get("model_stats")
    environment = _get(info, "config", "environment_type")
    return {
        "trajectory": steps,
        "history": history,
        "info": {
            "submission": submission or None,
            "exit_status": EXIT_STATUSES.get(raw_status, "exit_error") if raw_status else None,
            "model_stats": stats if isinstance(stats, dict) else {},
            "mini_swe_agent": {"trajectory_format": trajectory_format, "version": info.get("mini_version"),
                               "exit_status": raw_status},
        },
        "environment": environment if isinstance(environment, str) else None,
    }
