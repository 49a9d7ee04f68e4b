"""`agent.type: retry`: several attempts at one instance, then one is picked (SWE-agent 1.1's retry agent).

Each attempt is a whole default agent (`agent_configs`, used in turn) in a fresh environment. The `retry_loop`
decides when to stop and which attempt wins:
- `chooser`: attempts until `max_attempts` or the budget is spent, then a chooser model reads the submissions and
  names one (by the last number of its answer);
- `score`: a reviewer model scores each attempt right after it ends (mean of `n_sample` answers); attempts stop
  once `max_accepts` reached `accept_score`, and the best score wins (ties: fewest model calls).

For OEC this is a best-of-n expert. The rollout's `.traj` is the chosen attempt (its steps, history and info, so
every later stage reads it as usual) plus `attempts` (every attempt's whole trajectory, each marked in
`info.retry_attempt` with its index and whether it was chosen) and `info.retry` (the choice, the picker's answer and
the loop's model stats). Each attempt is also saved as it runs under `<traj_id>/attempts/attempt_<i>/`.
"""

from __future__ import annotations

import logging
import re
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from sweagent import __version__
from sweagent.agent.agents import AgentConfig, DefaultAgent
from sweagent.agent.model_factory import ModelConfig, get_model
from sweagent.agent.models import InstanceStats
from sweagent.agent.templates import render
from sweagent.environment.swe_env import SWEEnv
from sweagent.trajectory import Trajectory, TrajectoryInfo, traj_path
from sweagent.utils.unions import type_or

logger = logging.getLogger(__name__)


class PreselectorConfig(BaseModel):
    """Narrows many submissions down before the chooser sees them (its answer's last line lists indices)."""

    model_config = ConfigDict(extra="forbid")

    model: ModelConfig
    system_template: str
    instance_template: str
    """Variables: problem_statement, submissions (each rendered with submission_template)."""
    submission_template: str
    """Variables: the attempt's info values (submission, exit_status, edited_files30, ...; nested ones as a_b)."""
    max_len_submission: int = 5000
    """Longer submissions are shown as 'Solution invalid.' (0: no limit)."""


class ChooserConfig(PreselectorConfig):
    preselector: PreselectorConfig | None = None
    """Used first when more than two submissions are left."""


class _AttemptBudget(BaseModel):
    """When a retry loop stops starting attempts (both loops)."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int
    """Attempts at most (0: no limit but the budget)."""
    min_budget_for_new_attempt: float = 0.0
    """No new attempt when less than this many dollars of `cost_limit` are left."""
    cost_limit: float
    """Dollars all attempts together may spend; each attempt's model limit is cut to what is left (0: no limit)."""


class ChooserRetryLoopConfig(_AttemptBudget):
    type: Literal["chooser"] = "chooser"
    chooser: ChooserConfig


class TrajFormatterConfig(BaseModel):
    """How an attempt's steps are shown to the reviewer (`{{traj}}`)."""

    model_config = ConfigDict(extra="forbid")

    filter: list[str] = []
    """Steps whose action starts with one of these are left out."""
    output_filter: list[str] = []
    """Steps whose action starts with one of these are shown without their output."""
    item_template: str = "Model: {{response}}\n\nObservation: {{observation}}"
    """One step. Variables: the step's fields (action, observation, response, thought, ...), i_step, i_traj."""
    only_show_last_n_output: int = 0
    """Only the last n steps keep their output (0: all)."""


class ReviewerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["reviewer"] = "reviewer"
    system_template: str
    instance_template: str
    """Variables: problem_statement, traj, and the attempt's info values like submission_template's."""
    failure_score_penalty: float = 0.0
    """Subtracted from the score of an attempt that did not end with `submitted`."""
    traj_formatter: TrajFormatterConfig
    n_sample: int = 5
    """Reviewer answers per attempt; the score is their mean."""
    reduce_by_std: float = 0.0
    """The score is lowered by this many standard deviations of the answers."""
    score_range: tuple[float | None, float | None] = (None, None)
    """Answers whose score lies outside are ignored."""


class ScoreRetryLoopConfig(_AttemptBudget):
    type: Literal["score"] = "score"
    reviewer_config: ReviewerConfig
    accept_score: float
    """An attempt with at least this score is accepted."""
    max_accepts: int = 1
    """Stop after this many accepted attempts."""
    model: ModelConfig
    """The reviewer's model."""


RetryLoopConfig = Annotated[ChooserRetryLoopConfig | ScoreRetryLoopConfig, Field(discriminator="type")]


class RetryAgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["retry"] = "retry"
    name: str = "retry_main"
    agent_configs: list[AgentConfig] = Field(min_length=1)
    """Agents for the attempts, used in turn (attempt i runs agent_configs[i % len])."""
    retry_loop: RetryLoopConfig


AnyAgentConfig = Annotated[
    Annotated[AgentConfig, Tag("default")] | Annotated[RetryAgentConfig, Tag("retry")], Discriminator(type_or("default"))
]
"""The `agent` section: `type: default` (one attempt; the default) or `retry`."""


def submission_variables(info: dict[str, Any]) -> dict[str, Any]:
    """An attempt's info as template variables: strings by key, one level of mappings as `key_subkey`."""
    variables: dict[str, Any] = {"submission": info.get("submission") or ""}
    for key, value in info.items():
        if isinstance(value, str):
            variables[key] = value
        elif isinstance(value, dict):
            variables.update({f"{key}_{sub}": item for sub, item in value.items()})
    variables["submission"] = variables.get("submission") or ""
    return variables


def last_number(text: str, pattern: str = r"\d+") -> str | None:
    found = re.findall(pattern, text)
    return found[-1] if found else None


class _Picker:
    """A model that reads the attempts' submissions (the chooser or its preselector)."""

    def __init__(self, config: PreselectorConfig, instance_id: str):
        self.config = config
        self.model = get_model(config.model, instance_id)

    def ask(self, problem_statement: str, infos: list[dict[str, Any]]) -> tuple[str, list[dict[str, str]]]:
        shown = [self._submission(info) for info in infos]
        messages = [{"role": "system", "content": self.config.system_template},
                    {"role": "user", "content": render(self.config.instance_template, problem_statement=problem_statement, submissions=shown)}]
        return self.model.query(messages, None).content, messages

    def _submission(self, info: dict[str, Any]) -> str:
        submission = info.get("submission")
        if submission is None or len(submission) > self.config.max_len_submission > 0:
            return "Solution invalid."
        return render(self.config.submission_template, **submission_variables(info))


class ChooserLoop:
    def __init__(self, config: ChooserRetryLoopConfig, instance_id: str):
        self.config = config
        self.chooser = _Picker(config.chooser, instance_id)
        self.preselector = _Picker(config.chooser.preselector, instance_id) if config.chooser.preselector else None
        self.record: dict[str, Any] = {}

    def accepted_enough(self, infos: list[dict[str, Any]]) -> bool:
        return False

    @property
    def model_stats(self) -> InstanceStats:
        return self.chooser.model.stats + (self.preselector.model.stats if self.preselector else InstanceStats())

    def choose(self, problem_statement: str, infos: list[dict[str, Any]]) -> int:
        """Index of the chosen attempt; with two or more submitted attempts only those are candidates."""
        candidates = [i for i, info in enumerate(infos) if info.get("exit_status") == "submitted"]
        candidates = candidates if len(candidates) >= 2 else list(range(len(infos)))
        if self.preselector is not None and len(candidates) > 2:
            answer, _ = self.preselector.ask(problem_statement, [infos[i] for i in candidates])
            last_line = answer.strip().split("\n")[-1] if answer.strip() else ""
            picked = [candidates[int(n)] for n in re.findall(r"\d+", last_line) if int(n) < len(candidates)]
            self.record["preselector_response"] = answer
            candidates = picked or candidates
        answer, messages = self.chooser.ask(problem_statement, [infos[i] for i in candidates])
        number = last_number(answer)
        valid = number is not None and int(number) < len(candidates)
        chosen = candidates[int(number)] if valid else candidates[0]
        if not valid:
            logger.warning("chooser answer names no candidate (%r); taking the first", answer[-200:])
        self.record.update({"chooser_response": answer, "chooser_messages": messages, "candidates": candidates})
        return chosen


class ScoreLoop:
    def __init__(self, config: ScoreRetryLoopConfig, instance_id: str):
        self.config = config
        self.model = get_model(config.model, instance_id)
        self.scores: list[float] = []
        self.record: dict[str, Any] = {"reviews": []}

    @property
    def model_stats(self) -> InstanceStats:
        return self.model.stats

    def after_attempt(self, problem_statement: str, info: dict[str, Any], steps: list[dict[str, Any]]) -> None:
        """Score the attempt that just ended."""
        review = self.config.reviewer_config
        messages = [{"role": "system", "content": review.system_template},
                    {"role": "user", "content": render(review.instance_template, problem_statement=problem_statement,
                                                       traj=self._format(steps), **submission_variables(info))}]
        answers, scores = [], []
        for _ in range(review.n_sample):
            answer = self.model.query(messages, None).content
            score = self._score(answer)
            if score is not None:
                answers.append(answer)
                scores.append(score)
        value = statistics.fmean(scores) if scores else -100.0
        value -= review.failure_score_penalty if info.get("exit_status") != "submitted" else 0.0
        value -= review.reduce_by_std * (statistics.pstdev(scores) if len(scores) > 1 else 0.0)
        self.scores.append(value)
        self.record["reviews"].append({"score": value, "samples": scores, "answers": answers})

    def _score(self, answer: str) -> float | None:
        last_line = answer.strip().split("\n")[-1] if answer.strip() else ""
        number = last_number(last_line, r"-?\d+\.?\d*")
        low, high = self.config.reviewer_config.score_range
        if number is None or (low is not None and float(number) < low) or (high is not None and float(number) > high):
            return None
        return float(number)

    def _format(self, steps: list[dict[str, Any]]) -> str:
        shape = self.config.reviewer_config.traj_formatter
        kept = [s for s in steps if not any(s.get("action", "").strip().startswith(f) for f in shape.filter)]
        items = []
        for index, step in enumerate(kept):
            hidden = (shape.only_show_last_n_output > 0 and index < len(kept) - shape.only_show_last_n_output) or \
                any(step.get("action", "").strip().startswith(f) for f in shape.output_filter)
            items.append(render(shape.item_template, **{**step, "observation": "[Output omitted]" if hidden else step.get("observation", "")},
                                i_step=index, i_traj=1))
        return "\n\n".join(items)

    def accepted_enough(self, infos: list[dict[str, Any]]) -> bool:
        accepted = sum(score >= self.config.accept_score for score in self.scores)
        return accepted >= self.config.max_accepts > 0

    def choose(self, problem_statement: str, infos: list[dict[str, Any]]) -> int:
        """Highest score; among equal scores the attempt with the fewest model calls."""
        best = max(self.scores)
        tied = [i for i, score in enumerate(self.scores) if abs(score - best) < 1e-9]
        return min(tied, key=lambda i: infos[i].get("model_stats", {}).get("api_calls") or float("inf"))


AgentBuilder = Callable[[AgentConfig], DefaultAgent]
"""Builds the default agent of one attempt (run_single.build_agent with the rollout's id and seed)."""


class RetryAgent:
    def __init__(self, config: RetryAgentConfig, build: AgentBuilder, *, instance_id: str, replay_config: str | None):
        self.config = config
        self.build = build
        self.replay_config = replay_config
        loop = config.retry_loop
        self.loop = ChooserLoop(loop, instance_id) if isinstance(loop, ChooserRetryLoopConfig) else ScoreLoop(loop, instance_id)
        self.info = TrajectoryInfo(swe_agent_version=__version__)
        self.attempts: list[Trajectory] = []
        self._chosen: int | None = None

    def _attempt_config(self, index: int, spent: float) -> AgentConfig:
        """The attempt's agent, its model's cost limit cut to what the retry budget has left."""
        config = self.config.agent_configs[index % len(self.config.agent_configs)].model_copy(deep=True)
        remaining = self.config.retry_loop.cost_limit - spent
        model = config.model
        if self.config.retry_loop.cost_limit > 0 and hasattr(model, "per_instance_cost_limit"):
            if not model.per_instance_cost_limit or remaining < model.per_instance_cost_limit:
                model.per_instance_cost_limit = max(remaining, 1e-9)
        return config

    def _spent(self) -> float:
        return sum(t.info.model_stats.get("instance_cost", 0.0) for t in self.attempts)

    def _more_attempts(self) -> bool:
        loop = self.config.retry_loop
        spent = self._spent()
        if spent > loop.cost_limit > 0 or len(self.attempts) >= loop.max_attempts > 0:
            return False
        if loop.min_budget_for_new_attempt > 0 and loop.cost_limit - spent < loop.min_budget_for_new_attempt:
            return False
        return not self.loop.accepted_enough([t.info.model_dump() for t in self.attempts])

    def run(self, env: SWEEnv, output_dir: Path, traj_id: str) -> Trajectory:
        """Attempts in fresh environments (the first in `env`), then the pick; the .traj is saved after each attempt."""
        path = traj_path(output_dir, traj_id)
        while not self.attempts or self._more_attempts():
            index = len(self.attempts)
            agent = self.build(self._attempt_config(index, self._spent()))
            attempt_env = env if index == 0 else SWEEnv(env.config, env.problem)
            try:
                if attempt_env is not env:
                    attempt_env.start()
                trajectory = agent.run(attempt_env, output_dir / traj_id / "attempts", f"attempt_{index}")
            except Exception as exc:  # a later attempt's environment did not start: pick among those that ran
                logger.warning("attempt %d: environment failed to start (%s: %s)", index, type(exc).__name__, exc)
                self.loop.record["environment_error"] = f"attempt {index}: {type(exc).__name__}: {exc}"
                break
            finally:
                if attempt_env is not env:
                    attempt_env.close()
            self.attempts.append(trajectory)
            if isinstance(self.loop, ScoreLoop):
                self.loop.after_attempt(env.problem.problem_statement, trajectory.info.model_dump(), [s.model_dump() for s in trajectory.trajectory])
            self.trajectory(env).save(path)
        chosen = self.trajectory(env, choose=True)
        chosen.save(path)  # what run() returns is what the file holds (run_one does not save it again)
        return chosen

    def trajectory(self, env: SWEEnv, choose: bool = False) -> Trajectory:
        """The rollout so far; with `choose`, the picked attempt's content with every attempt kept and marked."""
        if not self.attempts:
            return Trajectory(info=self.info, replay_config=self.replay_config, environment=env.problem.id)
        chosen = self._choose(env) if choose else None
        marked = []
        for index, attempt in enumerate(self.attempts):
            copy = attempt.model_copy(deep=True)
            copy.info.retry_attempt = {"index": index, "chosen": index == chosen}
            marked.append(copy.to_json_dict())  # queries compacted as in a .traj file; Trajectory.model_validate expands them
        base = self.attempts[chosen if chosen is not None else -1].model_copy(deep=True)
        total = sum((InstanceStats(**t.info.model_stats) for t in self.attempts), InstanceStats()) + self.loop.model_stats
        base.info.model_stats = total.model_dump()
        base.info.retry = {"type": self.config.retry_loop.type, "best_attempt_idx": chosen, "n_attempts": len(self.attempts),
                           "rloop_model_stats": self.loop.model_stats.model_dump(), **self.loop.record}
        base.attempts = marked
        base.replay_config = self.replay_config
        return base

    def _choose(self, env: SWEEnv) -> int:
        if self._chosen is None:
            try:
                self._chosen = self.loop.choose(env.problem.problem_statement, [t.info.model_dump() for t in self.attempts])
            except Exception as exc:  # a failed picker must not lose the attempts
                logger.warning("retry loop could not choose (%s: %s); taking attempt 0", type(exc).__name__, exc)
                self.loop.record["choose_error"] = f"{type(exc).__name__}: {exc}"
                self._chosen = 0
        return self._chosen
