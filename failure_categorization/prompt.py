"""The judge prompt: what the agent was asked, which tools it had, how it ended, and its last steps.

Every piece is cut to a configurable length so that long runs fit a small judge's context window; cuts keep the
head and the tail of a text, because tracebacks and test failures sit at the end of an observation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from failure_categorization.selection import FailedTrajectory
from failure_categorization.taxonomy import Taxonomy
from sweagent.tools.bundles import Bundle, BundleError
from sweagent.tools.commands import BASH_COMMAND
from sweagent.trajectory import Trajectory

PROMPT_VERSION = 1
"""Bump when the prompt's wording or layout changes, so that reruns ask again instead of reusing old verdicts."""
_PR_DESCRIPTION = re.compile(r"<pr_description>\s*(.*?)\s*</pr_description>", re.DOTALL)

SYSTEM_PROMPT = (
    "You are an experienced software engineer who reviews failed runs of an autonomous coding agent. "
    "The agent worked in a code repository through shell commands and tools, trying to fix the problem it was "
    "given, and it did not succeed. Your job is to name the main reason it failed, choosing from a fixed list."
)
STRUCTURED_INSTRUCTION = (
    'Answer with a JSON object with two keys. "description": one or two sentences, in your own words, on what went '
    "wrong in this run, naming the commands, files or outputs that show it (do not copy a category's definition). "
    '"category": the name of the failure category that best explains the failure.'
)
LAST_LINE_INSTRUCTION = (
    "First write one or two sentences, in your own words, on what went wrong in this run, naming the commands, files "
    "or outputs that show it (do not copy a category's definition). Then, on the last line, write "
    "`category: <name>` with the name of the failure category that best explains the failure, and nothing else."
)


class PromptLimits(BaseModel):
    """How much of a trajectory the judge sees; part of the judge's identity, since it changes the verdicts."""

    model_config = ConfigDict(extra="forbid")

    last_steps: int = 5
    """The judge sees the last N actions and the last N observations."""
    max_problem_chars: int = 3000
    max_action_chars: int = 800
    max_observation_chars: int = 1500
    max_tools_chars: int = 2000


@dataclass(frozen=True)
class JudgePrompt:
    """The prompt for one trajectory; the closing instruction depends on whether the server enforces JSON."""

    traj_id: str
    body: str

    def messages(self, structured: bool) -> list[dict[str, str]]:
        instruction = STRUCTURED_INSTRUCTION if structured else LAST_LINE_INSTRUCTION
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"{self.body}\n\n{instruction}"},
        ]


def truncate(text: str, limit: int) -> str:
    """Keep the head and the tail of `text` within about `limit` characters, saying how much was cut."""
    text = text.strip()
    if len(text) <= limit:
        return text
    head = limit * 3 // 5
    tail = limit - head
    return f"{text[:head]}\n[... {len(text) - limit} characters cut ...]\n{text[len(text) - tail:]}"


def problem_statement(case: FailedTrajectory, trajectory: Trajectory) -> str:
    """The instance file's statement, else the first task message of the trajectory (its PR description if tagged)."""
    if case.problem_statement.strip():
        return case.problem_statement
    for message in trajectory.history:
        if message.role == "user" and message.message_type != "demonstration":
            match = _PR_DESCRIPTION.search(message.text)
            return match.group(1) if match else message.text
    return ""


def _first_sentence(text: str) -> str:
    match = re.match(r"\s*(.+?[.!?])(\s|$)", text, re.DOTALL)
    return (match.group(1) if match else text.strip()).replace("\n", " ")


def _tool_configs(node: Any) -> Iterator[dict[str, Any]]:
    """Every `tools` section in a replay config, wherever the agent (or each model of a switching agent) keeps it."""
    if isinstance(node, dict):
        if isinstance(node.get("bundles"), list):
            yield node
        for value in node.values():
            yield from _tool_configs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _tool_configs(value)


def tool_descriptions(trajectory: Trajectory) -> str:
    """The tools from the replay config's bundles, else the system prompt (where text-parsed agents list them)."""
    try:
        replay = json.loads(trajectory.replay_config) if trajectory.replay_config else None
    except json.JSONDecodeError:
        replay = None
    lines: dict[str, str] = {}
    for tools in _tool_configs(replay):
        if tools.get("enable_bash_tool", True):
            lines[BASH_COMMAND.name] = f"- {BASH_COMMAND.name}: {BASH_COMMAND.docstring}"
        for entry in tools["bundles"]:
            if not isinstance(entry, dict) or not entry.get("path"):
                continue
            bundle = Bundle(path=entry["path"], hidden_tools=entry.get("hidden_tools") or [])
            try:
                for command in bundle.commands():
                    lines[command.name] = f"- {command.name}: {_first_sentence(command.docstring or '')}"
            except BundleError:
                lines.setdefault(bundle.name, f"- tools of the bundle '{bundle.name}' (its description is not available here)")
    if lines:
        return "\n".join(lines.values())
    system = next((m.text for m in trajectory.history if m.role == "system"), "")
    if system.strip():
        return f"(from the agent's system prompt)\n{system}"
    return "(not recorded in the trajectory)"


def _handover(trajectory: Trajectory) -> str:
    oec = trajectory.info.oec
    if oec is None:
        return ""
    if oec.switched_at_step is None:
        return f" The student model ({oec.student.name}) acted alone; the expert never took over."
    if len(oec.handovers) > 1:  # expert windows or per-step mixing: control went back and forth
        changes = ", ".join(f"the {h.to_role} from step {h.step + 1}" for h in oec.handovers)
        return (f" The student model ({oec.student.name}) and the expert ({oec.expert.name}) took turns "
                f"({oec.switch_type}): {changes}.")
    return (
        f" The student model ({oec.student.name}) acted first and the expert ({oec.expert.name}) took over at "
        f"step {oec.switched_at_step + 1}."
    )


def _steps(trajectory: Trajectory, limits: PromptLimits) -> str:
    steps = trajectory.trajectory
    start = max(0, len(steps) - limits.last_steps)
    blocks = []
    for index in range(start, len(steps)):
        step = steps[index]
        role = f" ({step.model_role})" if step.model_role else ""
        if step.action.strip():
            action = f"Action:\n{truncate(step.action, limits.max_action_chars)}"
        else:
            action = f"Action: (none could be parsed) Model output:\n{truncate(step.response, limits.max_action_chars)}"
        observation = truncate(step.observation, limits.max_observation_chars) or "(empty)"
        blocks.append(f"### Step {index + 1}{role}\n{action}\nObservation:\n{observation}")
    return "\n\n".join(blocks) if blocks else "(the agent took no steps)"


def build_prompt(case: FailedTrajectory, trajectory: Trajectory, taxonomy: Taxonomy, limits: PromptLimits) -> JudgePrompt:
    note = taxonomy.note_for(case.exit_status)
    status = f"Exit status: {case.exit_status}"
    if note is not None:
        status += f" — {note.meaning}"
        if note.hint:
            status += f"\nWhere to look: {note.hint}"
    categories = "\n".join(f"- {name}: {meaning.strip()}" for name, meaning in taxonomy.categories.items())
    steps_total = len(trajectory.trajectory)
    shown = min(steps_total, limits.last_steps)
    sections = [
        f"## Failure categories\n{categories}",
        f"## Task\nInstance: {case.instance_id} (repository {case.repository})\n"
        f"{truncate(problem_statement(case, trajectory), limits.max_problem_chars) or '(no problem statement recorded)'}",
        f"## The agent's tools\n{truncate(tool_descriptions(trajectory), limits.max_tools_chars)}",
        f"## How the run ended\n{status}\nThe agent took {steps_total} steps.{_handover(trajectory)}",
        f"## The last {shown} of {steps_total} steps\n{_steps(trajectory, limits)}",
    ]
    return JudgePrompt(traj_id=case.traj_id, body="\n\n".join(sections))
