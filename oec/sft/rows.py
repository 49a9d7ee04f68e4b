"""One SFT row: the student's prompt, every turn rendered in the student's answer format, and per-turn weights.

The row opens with the messages the student's rollout opened with (system prompt, demonstrations, task, strategy;
`opening_messages` counts them). Weights follow OpenAI's fine-tuning convention (on assistant messages only: 1
trained, 0 not): student turns get 0 when masking, expert turns 1, a demonstration's answers always 0.
`model_switch_idx` is the index, among the rollout's assistant messages (those after the opening ones), of the
first expert turn, i.e. the number of student turns kept. Every rendered answer is read back with the student's
parser before the row is accepted, so the row never holds an answer the student's agent could not parse.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sweagent.tools.parsing import FormatError, ToolCall

from oec.sft.prompt import StudentPrompt
from oec.sft.turns import Turn


def turn_weights(turns: list[Turn], mask_student: bool) -> list[int]:
    return [0 if mask_student and turn.role == "student" else 1 for turn in turns]


def switch_index(turns: list[Turn]) -> int:
    return next((index for index, turn in enumerate(turns) if turn.role == "expert"), len(turns))


def _answer(prompt: StudentPrompt, turn: Turn, call_id: str) -> dict[str, Any]:
    """The assistant message for one turn, checked by reading it back with the student's parser."""
    call = ToolCall(turn.call.name, turn.call.arguments, call_id)
    rendered = prompt.parser.render(turn.thought, call, prompt.commands)
    parsed = prompt.parser.parse(rendered.content, rendered.tool_calls, prompt.commands)
    if (parsed.thought, parsed.call.name, parsed.call.arguments) != (turn.thought, call.name, call.arguments):
        raise FormatError(f"the {call.name} call does not read back unchanged with the {prompt.parser.type} parser")
    message: dict[str, Any] = {"role": "assistant", "content": rendered.content}
    if rendered.tool_calls:
        message["tool_calls"] = rendered.tool_calls
    return message


def build_messages(prompt: StudentPrompt, turns: list[Turn], weights: list[int], problem_statement: str,
                   working_dir: str, as_seen: bool = False) -> tuple[list[dict[str, Any]], int]:
    """Chat messages of a row and how many of them open it (see `StudentPrompt.row_messages` for `as_seen`).
    Raises FormatError for a turn the student's format cannot carry."""
    messages = prompt.opening_messages(problem_statement, working_dir)
    opening = len(messages)
    for index, (turn, weight) in enumerate(zip(turns, weights)):
        call_id = f"call_{index}"
        try:
            answer = _answer(prompt, turn, call_id)
        except FormatError as exc:
            raise FormatError(f"turn {index}: {exc}") from None
        messages.append({**answer, "message_type": "action", "weight": weight})
        if turn.observation is None:
            continue
        content = prompt.templates.observation_message(turn.observation, **{"working_dir": working_dir, **turn.state})
        if prompt.native_tool_calls:
            messages.append({"role": "tool", "content": content, "tool_call_ids": [call_id], "message_type": "observation"})
        else:
            messages.append({"role": "user", "content": content, "message_type": "observation"})
    return prompt.row_messages(messages, as_seen), opening


def dedupe_key(row: dict[str, Any]) -> str:
    """Two rows are duplicates when they would train the same thing on the same instance."""
    text = json.dumps([row["instance_id"], row["messages"]], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
