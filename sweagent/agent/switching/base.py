"""What the step loop asks about who acts; `SingleModel` is the answer for a run with one model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from sweagent.agent.models import InstanceStats
from sweagent.trajectory import OECInfo

if TYPE_CHECKING:
    from sweagent.agent.agents import Profile


class Switcher(Protocol):
    """Decides before each step (and after each malformed answer) which profile acts; the loop does the hand-over."""

    profiles: list[Profile]
    """Every profile that may act, the first one acting at step 0."""
    resets_history: bool
    """Whether a hand-over starts the new profile from a fresh prompt."""

    def profile_for_step(self, step: int) -> Profile | None:
        """The profile that takes `step`; None when the scheme ends the rollout before it."""

    def profile_after_format_error(self, step: int) -> Profile:
        """The profile that retries `step` after a malformed answer (the stuck trigger may hand over here)."""

    def after_step(self, action: str) -> None:
        """Told the action of every completed step."""

    def total_stats(self) -> InstanceStats:
        """Model usage of the whole rollout."""

    def oec_info(self) -> OECInfo | None:
        """What `info.oec` records; None for a single-model run."""


class SingleModel:
    """The no-op switcher: one profile acts at every step."""

    resets_history = False

    def __init__(self, profile: Profile):
        self.profiles = [profile]

    def profile_for_step(self, step: int) -> Profile:
        return self.profiles[0]

    def profile_after_format_error(self, step: int) -> Profile:
        return self.profiles[0]

    def after_step(self, action: str) -> None:
        pass

    def total_stats(self) -> InstanceStats:
        return self.profiles[0].model.stats

    def oec_info(self) -> None:
        return None
