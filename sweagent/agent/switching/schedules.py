"""`agent.model.switch`: when control passes between student and expert, one pydantic class per scheme.

Each schedule answers one question before every step: given who acts now and what the rollout has done so far,
who acts next (`next_role`). The draws a schedule needs come from `RolloutDraws`, seeded by the run seed, the
rollout id and a key naming the draw, so a rerun reproduces every hand-over on any machine, and the first
hand-over of `random_step_range` and `expert_window` lands on the same step for the same rollout.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from sweagent.agent.models import InstanceStats
from sweagent.trajectory import ModelRole
from sweagent.utils.unions import type_or


class StuckTrigger(BaseModel):
    """Hand over early when the student is visibly stuck (combinable with any schedule: whichever comes first)."""

    model_config = ConfigDict(extra="forbid")

    repeated_actions: int | None = 3
    """Hand over when the student issues the same action this many times in a row (null: off)."""
    consecutive_format_errors: int | None = 3
    """Hand over when the student produces this many malformed outputs in a row (null: off)."""


_ESCAPED_LAYOUT = re.compile(r"\\+[nt]")
_BACKSLASHES = re.compile(r"\\+")
_WHITESPACE = re.compile(r"\s+")


def action_key(action: str) -> str:
    """What the stuck trigger compares: the action with escapes and whitespace normalised. A model that copies an
    escaped command back adds a layer of backslashes every step (`{'a'` → `{\\'a\\'` → `{\\\\\\'a...`), and
    each repeat would otherwise count as a new action."""
    text = _ESCAPED_LAYOUT.sub(" ", action)
    return _WHITESPACE.sub(" ", _BACKSLASHES.sub("", text)).strip()


class RolloutDraws:
    """The random numbers of one rollout, each keyed by name, recorded as they are drawn."""

    def __init__(self, seed: int, traj_id: str):
        self.seed = seed
        self.traj_id = traj_id
        self.recorded: dict[str, int] = {}

    def _rng(self, key: str) -> random.Random:
        # The unkeyed stream is the one earlier releases drew the switch step from, so their runs reproduce.
        text = f"{self.seed}:{self.traj_id}" + (f":{key}" if key else "")
        return random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))

    def integer(self, key: str, low: int, high: int, *, record: bool = True) -> int:
        """Uniform in [low, high]; the same (seed, rollout, key) always gives the same value."""
        value = self._rng(key).randint(low, high)
        if record:
            self.recorded[key or "switch_step"] = value
        return value

    def unit(self, key: str) -> float:
        """Uniform in [0, 1), not recorded (mixture draws one per step; the roles show the outcome)."""
        return self._rng(key).random()


class StepRange(BaseModel):
    """A length drawn uniformly per rollout from [start, end]."""

    model_config = ConfigDict(extra="forbid")

    start: int = Field(ge=0)
    """Lower bound (inclusive)."""
    end: int = Field(ge=0)
    """Upper bound (inclusive)."""

    @model_validator(mode="after")
    def _ordered(self) -> StepRange:
        if self.start > self.end:
            raise ValueError(f"needs 0 <= start <= end, got start={self.start}, end={self.end}")
        return self

    def draw(self, draws: RolloutDraws, key: str) -> int:
        return draws.integer(key, self.start, self.end)


class RolloutState(Protocol):
    """What a schedule may look at: the `RolePlan` of the rollout."""

    role: ModelRole
    draws: RolloutDraws
    expert_stretches: int

    def steps_in_role(self, step: int) -> int: ...


class _Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stuck: StuckTrigger | None = None
    """Optional early hand-over to the expert when the student is stuck."""

    def next_role(self, state: RolloutState, step: int, student_stats: InstanceStats) -> ModelRole:
        """Who takes `step`."""
        raise NotImplementedError

    def may_hand_over_early(self, state: RolloutState) -> bool:
        """Whether the stuck trigger may give this student step to the expert."""
        return self.stuck is not None

    def ends_on_return(self, state: RolloutState) -> bool:
        """True when the rollout ends instead of going back from the expert to the student."""
        return False

    def first_switch_step(self, draws: RolloutDraws) -> int | None:
        """The step the schedule plans for the first hand-over, when it is known in advance."""
        return None


class Never(_Schedule):
    type: Literal["never"] = "never"
    """Pure student rollouts (the `stuck` trigger is ignored too)."""

    def next_role(self, state: RolloutState, step: int, student_stats: InstanceStats) -> ModelRole:
        return "student"

    def may_hand_over_early(self, state: RolloutState) -> bool:
        return False


class _OneSwitch(_Schedule):
    """The paper's scheme: once the expert has taken over it keeps the rollout."""

    def due(self, state: RolloutState, step: int, student_stats: InstanceStats) -> bool:
        raise NotImplementedError

    def next_role(self, state: RolloutState, step: int, student_stats: InstanceStats) -> ModelRole:
        return "expert" if state.role == "expert" or self.due(state, step, student_stats) else "student"


class StepCount(_OneSwitch):
    type: Literal["step_count"] = "step_count"
    """The expert takes step `step` and every later one."""
    step: int = Field(ge=0)
    """k: the first expert step (0 = pure expert rollout)."""

    def due(self, state: RolloutState, step: int, student_stats: InstanceStats) -> bool:
        return step >= self.step

    def first_switch_step(self, draws: RolloutDraws) -> int | None:
        return self.step


class RandomStepRange(_OneSwitch, StepRange):
    type: Literal["random_step_range"] = "random_step_range"
    """The first expert step k is drawn per rollout, uniform in [start, end]."""

    def due(self, state: RolloutState, step: int, student_stats: InstanceStats) -> bool:
        return step >= self.first_switch_step(state.draws)

    def first_switch_step(self, draws: RolloutDraws) -> int:
        return self.draw(draws, "")


class TokenCount(_OneSwitch):
    type: Literal["token_count"] = "token_count"
    """Hand over once the student has sent and received `tokens` tokens."""
    tokens: int = Field(ge=0)
    """Student token budget."""

    def due(self, state: RolloutState, step: int, student_stats: InstanceStats) -> bool:
        return student_stats.tokens_sent + student_stats.tokens_received >= self.tokens


class Cost(_OneSwitch):
    type: Literal["cost"] = "cost"
    """Hand over once the student has spent `cost` dollars."""
    cost: float = Field(ge=0)
    """Student budget in dollars."""

    def due(self, state: RolloutState, step: int, student_stats: InstanceStats) -> bool:
        return student_stats.instance_cost >= self.cost


class ExpertWindow(_Schedule, StepRange):
    type: Literal["expert_window"] = "expert_window"
    """The student acts for a drawn number of steps in [start, end], the expert for `window` steps, then the student
    again; repeated up to `max_windows` times, each student stretch drawn afresh."""
    window: int | StepRange = 1
    """Expert steps per window: a number, or {start, end} drawn per window."""
    max_windows: int = Field(1, ge=1)
    """How many expert windows a rollout gets at most."""
    end_after_window: bool = False
    """End the rollout when the last window is over (teacher continuations only; the diff is auto-submitted)."""

    def _window(self, state: RolloutState) -> int:
        if isinstance(self.window, int):
            return self.window
        return self.window.draw(state.draws, f"window{state.expert_stretches}")

    def _student_stretch(self, state: RolloutState) -> int:
        return self.draw(state.draws, "" if state.expert_stretches == 0 else f"gap{state.expert_stretches}")

    def next_role(self, state: RolloutState, step: int, student_stats: InstanceStats) -> ModelRole:
        if state.role == "expert":
            return "student" if state.steps_in_role(step) >= self._window(state) else "expert"
        if state.expert_stretches < self.max_windows and state.steps_in_role(step) >= self._student_stretch(state):
            return "expert"
        return "student"

    def may_hand_over_early(self, state: RolloutState) -> bool:
        return self.stuck is not None and state.expert_stretches < self.max_windows

    def ends_on_return(self, state: RolloutState) -> bool:
        return self.end_after_window and state.expert_stretches >= self.max_windows

    @field_validator("window")
    @classmethod
    def _window_positive(cls, window: int | StepRange) -> int | StepRange:
        if isinstance(window, int) and window < 1:
            raise ValueError(f"must be >= 1, got {window}")
        return window

    def first_switch_step(self, draws: RolloutDraws) -> int:
        return self.draw(draws, "")



class Mixture(_Schedule):
    type: Literal["mixture"] = "mixture"
    """DAgger's beta-mixing: the expert takes each step with probability beta, drawn per rollout and step."""
    beta: float | list[float] = 0.5
    """Probability that the expert acts, or one value per DAgger round (the last one repeats)."""
    round: int = Field(0, ge=0)
    """DAgger round picking the beta of a list (a loop raises it each round to lower the expert's share)."""

    @field_validator("beta")
    @classmethod
    def _probabilities(cls, beta: float | list[float]) -> float | list[float]:
        betas = beta if isinstance(beta, list) else [beta]
        if not betas or not all(0.0 <= value <= 1.0 for value in betas):
            raise ValueError(f"must be a probability in [0, 1] or a non-empty list of them (one per round), got {beta}")
        return beta

    @property
    def current_beta(self) -> float:
        return self.beta[min(self.round, len(self.beta) - 1)] if isinstance(self.beta, list) else self.beta

    def next_role(self, state: RolloutState, step: int, student_stats: InstanceStats) -> ModelRole:
        return "expert" if state.draws.unit(f"mix{step}") < self.current_beta else "student"


SwitchSchedule = Annotated[
    Annotated[StepCount, Tag("step_count")]
    | Annotated[RandomStepRange, Tag("random_step_range")]
    | Annotated[TokenCount, Tag("token_count")]
    | Annotated[Cost, Tag("cost")]
    | Annotated[Never, Tag("never")]
    | Annotated[ExpertWindow, Tag("expert_window")]
    | Annotated[Mixture, Tag("mixture")],
    Discriminator(type_or("random_step_range")),  # a `switch` without `type` is the paper's scheme
]
