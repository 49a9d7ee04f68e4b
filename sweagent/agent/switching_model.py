"""On-policy expert corrections: the student acts until the switch point, then the expert takes over.

Algorithm (per rollout):
  1. draw the switch step k (fixed, or uniform in [start, end] from an RNG seeded by the run seed and rollout id);
  2. the student acts for steps 0..k-1 — unless the `stuck` trigger fires first, or it submits (a pure student
     rollout, recorded with `switched_at_step: null`);
  3. at step k the expert receives the same history, re-rendered with its own templates and parse format, its tools
     are installed if they differ, and it acts until it submits or a limit ends the run.
`token_count` and `cost` schedules switch once the student has used that many tokens or dollars instead.
"""

from __future__ import annotations

import hashlib
import logging
import random
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sweagent.agent.history_processors import HistoryProcessorConfig
from sweagent.agent.models import InstanceStats, LiteLLMModelConfig, ReplayModelConfig
from sweagent.agent.oracle_model import OracleModelConfig
from sweagent.agent.templates import TemplateConfig
from sweagent.tools.tools import ToolConfig
from sweagent.trajectory import ModelInfo, OECInfo

if TYPE_CHECKING:
    from sweagent.agent.agents import AgentConfig, DefaultAgent, Profile
    from sweagent.environment.swe_env import SWEEnv

logger = logging.getLogger(__name__)

MemberModelConfig = Annotated[LiteLLMModelConfig | ReplayModelConfig | OracleModelConfig, Field(discriminator="type")]


class SwitchMemberConfig(BaseModel):
    """One side of the switch: its model plus, optionally, its own templates, tools and history processors."""

    model_config = ConfigDict(extra="forbid")

    model: MemberModelConfig
    """The model (litellm, replay, or oracle for demos)."""
    templates: TemplateConfig | None = None
    """Prompt templates of this model; default: `agent.templates`."""
    tools: ToolConfig | None = None
    """Tools and parse function of this model; default: `agent.tools`."""
    history_processors: list[HistoryProcessorConfig] | None = None
    """History processors of this model; default: `agent.history_processors`."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """`- name: gpt-4o` is short for `- model: {name: gpt-4o}`."""
        if isinstance(data, dict) and "model" not in data:
            data = {"model": data}
        if isinstance(data, dict) and isinstance(data.get("model"), dict):
            data = {**data, "model": {"type": "litellm", **data["model"]}}
        return data


class StuckTrigger(BaseModel):
    """Switch early when the student is visibly stuck (combinable with any schedule: whichever comes first)."""

    model_config = ConfigDict(extra="forbid")

    repeated_actions: int | None = 3
    """Switch when the student issues the same action this many times in a row (null: off)."""
    consecutive_format_errors: int | None = 3
    """Switch when the student produces this many malformed outputs in a row (null: off)."""


class SwitchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["step_count", "random_step_range", "token_count", "cost", "never"] = "random_step_range"
    """When to switch: at a fixed step, at a step drawn per rollout, after N student tokens or $X of student cost;
    `never` gives pure student rollouts (the `stuck` trigger is ignored too)."""
    step: int | None = None
    """`step_count`: the expert takes step k (0 = pure expert rollout)."""
    start: int | None = None
    """`random_step_range`: lower bound of k (inclusive)."""
    end: int | None = None
    """`random_step_range`: upper bound of k (inclusive)."""
    tokens: int | None = None
    """`token_count`: switch once the student has sent+received this many tokens."""
    cost: float | None = None
    """`cost`: switch once the student has spent this many dollars."""
    stuck: StuckTrigger | None = None
    """Optional early switch when the student is stuck."""

    @model_validator(mode="after")
    def _check_fields(self) -> SwitchConfig:
        required = {"step_count": ["step"], "random_step_range": ["start", "end"], "token_count": ["tokens"], "cost": ["cost"], "never": []}
        missing = [name for name in required[self.type] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"switch type '{self.type}' needs {', '.join(missing)}")
        if self.type == "random_step_range" and not 0 <= self.start <= self.end:  # type: ignore[operator]
            raise ValueError(f"random_step_range needs 0 <= start <= end, got start={self.start}, end={self.end}")
        if self.type == "step_count" and self.step < 0:  # type: ignore[operator]
            raise ValueError("step must be >= 0")
        return self


class SwitchingModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["switching"] = "switching"
    """A student that hands the rollout to an expert part-way."""
    models: list[SwitchMemberConfig]
    """Exactly two: [student, expert]."""
    switch: SwitchConfig = Field(default_factory=lambda: SwitchConfig(type="random_step_range", start=0, end=30))
    """When the expert takes over."""
    reset_history_on_switch: bool = False
    """Start the expert from a fresh prompt instead of the student's history (the repository keeps its state)."""

    @model_validator(mode="after")
    def _two_models(self) -> SwitchingModelConfig:
        if len(self.models) != 2:
            raise ValueError(f"needs exactly two models [student, expert], got {len(self.models)}")
        return self

    def build(self, agent_config: AgentConfig, *, instance_id: str, seed: int, traj_id: str) -> ModelSwitcher:
        return ModelSwitcher(self, agent_config, instance_id=instance_id, seed=seed, traj_id=traj_id)


def draw_switch_step(switch: SwitchConfig, seed: int, traj_id: str) -> int | None:
    """The step at which the expert takes over; same (seed, rollout) → same step, on every machine."""
    if switch.type == "step_count":
        return switch.step
    if switch.type == "random_step_range":
        digest = hashlib.sha256(f"{seed}:{traj_id}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big")).randint(switch.start, switch.end)  # type: ignore[arg-type]
    return None


class ModelSwitcher:
    """Owns the two profiles and decides, before each step, whether the expert takes over."""

    def __init__(self, config: SwitchingModelConfig, agent_config: AgentConfig, *, instance_id: str, seed: int, traj_id: str):
        from sweagent.agent.agents import Profile
        from sweagent.agent.model_factory import get_model

        self.config = config
        self.seed = seed
        self.profiles: list[Profile] = []
        for role, member in zip(("student", "expert"), config.models, strict=True):
            self.profiles.append(Profile(
                role=role, model=get_model(member.model, instance_id),
                templates=member.templates or agent_config.templates, tools=member.tools or agent_config.tools,
                history_processors=list(member.history_processors if member.history_processors is not None else agent_config.history_processors),
            ))
        self.switch_step_drawn = draw_switch_step(config.switch, seed, traj_id)
        self.switched_at_step: int | None = None
        self._recent_actions: list[str] = []
        self._consecutive_format_errors = 0

    @property
    def student(self) -> Profile:
        return self.profiles[0]

    @property
    def expert(self) -> Profile:
        return self.profiles[1]

    # ---- the decision -----------------------------------------------------------------------------------------------
    def _schedule_due(self, step_index: int) -> bool:
        switch = self.config.switch
        stats = self.student.model.stats
        if switch.type in {"step_count", "random_step_range"}:
            return step_index >= self.switch_step_drawn  # type: ignore[operator]
        if switch.type == "token_count":
            return stats.tokens_sent + stats.tokens_received >= switch.tokens  # type: ignore[operator]
        if switch.type == "cost":
            return stats.instance_cost >= switch.cost  # type: ignore[operator]
        return False

    def _stuck(self) -> str | None:
        stuck = self.config.switch.stuck
        if stuck is None or self.config.switch.type == "never":  # `never` is a pure student rollout, stuck or not
            return None
        n = stuck.repeated_actions
        if n and len(self._recent_actions) >= n and len(set(self._recent_actions[-n:])) == 1:
            return f"same action {n} times in a row"
        if stuck.consecutive_format_errors and self._consecutive_format_errors >= stuck.consecutive_format_errors:
            return f"{self._consecutive_format_errors} malformed outputs in a row"
        return None

    def before_step(self, agent: DefaultAgent, env: SWEEnv, step_index: int) -> None:
        if self.switched_at_step is not None:
            return
        reason = "schedule" if self._schedule_due(step_index) else self._stuck()
        if reason:
            self.switch(agent, env, step_index, reason)

    def record_format_error(self, agent: DefaultAgent, env: SWEEnv) -> bool:
        """Count a student format error; True when the stuck trigger switched to the expert just now."""
        if self.switched_at_step is not None:
            return False
        self._consecutive_format_errors += 1
        reason = self._stuck()
        if reason:
            self.switch(agent, env, len(agent.steps), reason)
            return True
        return False

    def after_step(self, action: str) -> None:
        self._consecutive_format_errors = 0
        self._recent_actions.append(action)

    # ---- the hand-over ---------------------------------------------------------------------------------------------
    def switch(self, agent: DefaultAgent, env: SWEEnv, step_index: int, reason: str) -> None:
        from sweagent.tools.parsing import convert_messages

        student, expert = self.student, self.expert
        logger.info("switching to the expert (%s) at step %d: %s", expert.model.name, step_index, reason)
        self.switched_at_step = step_index
        agent.profile = expert
        if [b.path for b in expert.tools.bundles] != [b.path for b in student.tools.bundles]:
            expert.tools.install(env, env.config.working_dir)
        opening = agent.build_opening_messages(env)
        if self.config.reset_history_on_switch:
            agent.history = opening
        else:
            # Earlier calls may use tools only the student had (e.g. its own submit), so both sets are known here.
            commands = {c.name: c for c in [*student.tools.commands, *expert.tools.commands]}
            converted = convert_messages(agent.history[2:], student.parser, expert.parser, list(commands.values()))
            agent.history = opening + converted

    # ---- what the trajectory records ------------------------------------------------------------------------------
    def total_stats(self) -> InstanceStats:
        return self.student.model.stats + self.expert.model.stats

    def oec_info(self) -> OECInfo:
        return OECInfo(
            switch_type=self.config.switch.type, switch_step_drawn=self.switch_step_drawn,
            switched_at_step=self.switched_at_step, seed=self.seed,
            student=ModelInfo(name=self.student.model.name, stats=self.student.model.stats.model_dump()),
            expert=ModelInfo(name=self.expert.model.name, stats=self.expert.model.stats.model_dump()),
        )
