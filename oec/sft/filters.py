"""The repetition filter: a trajectory stuck in a loop teaches looping, so it is dropped.

Two signals: the same action several times in a row, and observations cycling (a block of up to
`max_cycle_length` observations repeated several times in a row, which also catches A-B-A-B ping-pong).
Empty observations never count as repeats: many healthy commands print nothing. By default only the trained
turns are checked: a loop in the masked student part is often exactly why the expert took over, and the
expert's way out of it is the data we want.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from oec.sft.turns import Turn


def longest_repeat(items: Sequence[Hashable | None], period: int) -> int:
    """How many times in a row a block of `period` items occurs at best (None items never match)."""
    best = run = 0
    for index in range(period, len(items)):
        current, earlier = items[index], items[index - period]
        run = run + 1 if current is not None and current == earlier else 0
        best = max(best, run)
    return 1 + best // period if items else 0


class RepetitionFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_repeated_actions: int = 3
    """Drop a trajectory that runs the same action this many times in a row (0 turns the check off)."""
    observation_cycle_repeats: int = 3
    """Drop a trajectory whose observations repeat the same cycle this many times in a row (0: off)."""
    max_cycle_length: int = 3
    """Longest cycle of observations looked for (1 = the same observation again and again)."""
    scope: Literal["trained", "all"] = "trained"
    """Check only the turns trained on (weight 1), or every turn."""

    def reason(self, turns: list[Turn], weights: list[int]) -> str | None:
        """`repeated_action`, `observation_cycle`, or None for a healthy trajectory."""
        checked = [turn for turn, weight in zip(turns, weights) if weight or self.scope == "all"]
        if self.max_repeated_actions > 0:
            actions = [(t.call.name, json.dumps(t.call.arguments, sort_keys=True)) for t in checked]
            if longest_repeat(actions, 1) >= self.max_repeated_actions:
                return "repeated_action"
        if self.observation_cycle_repeats > 0:
            observations = [t.observation if t.observation and t.observation.strip() else None for t in checked]
            for period in range(1, self.max_cycle_length + 1):
                if longest_repeat(observations, period) >= self.observation_cycle_repeats:
                    return "observation_cycle"
        return None
