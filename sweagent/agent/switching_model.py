"""On-policy expert corrections: the student starts every rollout, the schedule decides when the expert acts.

Algorithm (per rollout), generalising the paper's Algorithm 1 from one hand-over to any sequence of them:
  1. draw what the schedule needs (`switching/schedules.py`) from an RNG seeded by the run seed and the rollout id;
  2. before each step t, the schedule names who takes t: the paper's schemes hand over once at k (or after a token
     or dollar budget) and the expert keeps the rollout; `expert_window` gives the expert a few steps, then the
     student again; `mixture` lets the expert take each step with probability beta. A stuck student (repeated
     actions, malformed outputs) is handed over early. A student that submits first gives a pure student rollout;
  3. at every hand-over the acting model receives the same history, re-rendered with its own templates and parse
     format, its tools installed if they differ (`switching/handover.py`); `info.oec` records each hand-over.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sweagent.agent.history_processors import HistoryProcessorConfig
from sweagent.agent.models import InstanceStats, LiteLLMModelConfig, ReplayModelConfig
from sweagent.agent.oracle_model import OracleModelConfig
from sweagent.agent.switching.schedules import Mixture, RandomStepRange, RolloutDraws, SwitchSchedule, action_key
from sweagent.agent.templates import TemplateConfig
from sweagent.tools.tools import ToolConfig
from sweagent.trajectory import Handover, ModelInfo, ModelRole, OECInfo

if TYPE_CHECKING:
    from sweagent.agent.agents import AgentConfig, Profile

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

    def prompt_parts(self, agent_config: AgentConfig) -> tuple[TemplateConfig, ToolConfig, list[HistoryProcessorConfig]]:
        """Templates, tools and history processors this member is prompted with: its own, else the agent's.

        The one rule for it: the switcher builds its profiles with it and the SFT conversion reads a run's student
        prompt with it, so rows show the prompt the student was sent.
        """
        processors = self.history_processors if self.history_processors is not None else agent_config.history_processors
        return self.templates or agent_config.templates, self.tools or agent_config.tools, list(processors)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """`- name: gpt-4o` is short for `- model: {name: gpt-4o}`."""
        if isinstance(data, dict) and "model" not in data:
            data = {"model": data}
        if isinstance(data, dict) and isinstance(data.get("model"), dict):
            data = {**data, "model": {"type": "litellm", **data["model"]}}
        return data


class SwitchingModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["switching"] = "switching"
    """A student that hands the rollout to an expert part-way."""
    models: list[SwitchMemberConfig]
    """Exactly two: [student, expert]."""
    switch: SwitchSchedule = Field(default_factory=lambda: RandomStepRange(start=0, end=30))
    """When control passes between student and expert (`type` picks the scheme)."""
    reset_history_on_switch: bool = False
    """Start the new model from a fresh prompt at each hand-over instead of the history (the repository keeps its state)."""

    @model_validator(mode="after")
    def _two_models(self) -> SwitchingModelConfig:
        if len(self.models) != 2:
            raise ValueError(f"needs exactly two models [student, expert], got {len(self.models)}")
        return self

    def build(self, agent_config: AgentConfig, *, instance_id: str, seed: int, traj_id: str) -> ModelSwitcher:
        return ModelSwitcher(self, agent_config, instance_id=instance_id, seed=seed, traj_id=traj_id)




class RolePlan:
    """Who acts at each step of one rollout: the schedule's draws, the stuck trigger and every hand-over so far."""

    def __init__(self, schedule: SwitchSchedule, seed: int, traj_id: str):
        self.schedule = schedule
        self.draws = RolloutDraws(seed, traj_id)
        self.role: ModelRole = "student"
        self.handovers: list[Handover] = []
        self.switch_step_drawn = schedule.first_switch_step(self.draws)
        self._role_since = 0
        self._recent_actions: list[str] = []
        self._consecutive_format_errors = 0

    @property
    def expert_stretches(self) -> int:
        """How many times the expert has taken over so far."""
        return sum(handover.to_role == "expert" for handover in self.handovers)

    def steps_in_role(self, step: int) -> int:
        return step - self._role_since

    def role_for(self, step: int, student_stats: InstanceStats) -> ModelRole | None:
        """Who takes `step` (None: the scheme ends the rollout here). Called once per step, in order."""
        wanted = self.schedule.next_role(self, step, student_stats)
        if self.role == "expert" and wanted == "student" and self.schedule.ends_on_return(self):
            return None
        reason = "schedule"
        if self.role == wanted == "student":
            reason = self._stuck() or ""
            wanted = "expert" if reason else "student"
        if wanted != self.role:
            self.record_hand_over(step, wanted, reason)
        return self.role

    def role_after_format_error(self, step: int) -> ModelRole:
        """Who retries `step` after a malformed answer of the acting model."""
        if self.role == "student":
            self._consecutive_format_errors += 1
            reason = self._stuck()
            if reason:
                self.record_hand_over(step, "expert", reason)
        return self.role

    def after_step(self, action: str) -> None:
        self._consecutive_format_errors = 0
        self._recent_actions.append(action_key(action))

    def _stuck(self) -> str | None:
        stuck = self.schedule.stuck
        if stuck is None or not self.schedule.may_hand_over_early(self):
            return None
        n = stuck.repeated_actions
        if n and len(self._recent_actions) >= n and len(set(self._recent_actions[-n:])) == 1:
            return f"same action {n} times in a row"
        if stuck.consecutive_format_errors and self._consecutive_format_errors >= stuck.consecutive_format_errors:
            return f"{self._consecutive_format_errors} malformed outputs in a row"
        return None

    def record_hand_over(self, step: int, to_role: ModelRole, reason: str) -> None:
        """`to_role` acts from `step` on (the schedule's or stuck trigger's decision, or a replayed branch's prefix)."""
        logger.info("hand-over to the %s before step %d: %s", to_role, step, reason)
        self.handovers.append(Handover(step=step, from_role=self.role, to_role=to_role, reason=reason))
        self.role, self._role_since = to_role, step
        self._recent_actions, self._consecutive_format_errors = [], 0  # a returning student starts unstuck

    @property
    def switched_at_step(self) -> int | None:
        """The first expert step."""
        return next((h.step for h in self.handovers if h.to_role == "expert"), None)

    def recorded_draws(self) -> dict[str, Any]:
        beta = {"beta": self.schedule.current_beta} if isinstance(self.schedule, Mixture) else {}
        return {**self.draws.recorded, **beta}


class ModelSwitcher:
    """The `Switcher` of a student/expert run: two profiles and the rollout's `RolePlan`."""

    def __init__(self, config: SwitchingModelConfig, agent_config: AgentConfig, *, instance_id: str, seed: int, traj_id: str):
        from sweagent.agent.agents import Profile
        from sweagent.agent.model_factory import get_model

        self.config = config
        self.seed = seed
        self.resets_history = config.reset_history_on_switch
        self.profiles: list[Profile] = []
        for role, member in zip(("student", "expert"), config.models, strict=True):
            templates, tools, history_processors = member.prompt_parts(agent_config)
            self.profiles.append(Profile(role=role, model=get_model(member.model, instance_id), templates=templates,
                                         tools=tools, history_processors=history_processors))
        self.plan = RolePlan(config.switch, seed, traj_id)

    @property
    def student(self) -> Profile:
        return self.profiles[0]

    @property
    def expert(self) -> Profile:
        return self.profiles[1]

    def _profile(self, role: ModelRole) -> Profile:
        return self.student if role == "student" else self.expert

    def profile_for_step(self, step: int) -> Profile | None:
        role = self.plan.role_for(step, self.student.model.stats)
        return None if role is None else self._profile(role)

    def profile_after_format_error(self, step: int) -> Profile:
        return self._profile(self.plan.role_after_format_error(step))

    def after_step(self, action: str) -> None:
        self.plan.after_step(action)

    def total_stats(self) -> InstanceStats:
        return self.student.model.stats + self.expert.model.stats

    def oec_info(self) -> OECInfo:
        plan = self.plan
        return OECInfo(
            switch_type=self.config.switch.type, switch_step_drawn=plan.switch_step_drawn,
            switched_at_step=plan.switched_at_step, seed=self.seed, handovers=plan.handovers, draws=plan.recorded_draws(),
            student=ModelInfo(name=self.student.model.name, stats=self.student.model.stats.model_dump()),
            expert=ModelInfo(name=self.expert.model.name, stats=self.expert.model.stats.model_dump()),
        )
