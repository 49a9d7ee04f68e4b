"""`agent.templates`: the Jinja templates that turn the task and each observation into messages."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from pydantic import BaseModel, ConfigDict, field_validator

from sweagent import REPO_ROOT
from sweagent.utils.errors import OECError


class TemplateError(OECError):
    """A template that uses an unknown variable or has a syntax error."""


class TemplateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system_template: str = "You are a helpful assistant that can interact with a computer to solve tasks."
    """First message. Variables: command_docs, working_dir."""
    instance_template: str = (
        "<uploaded_files>\n{{working_dir}}\n</uploaded_files>\n"
        "The repository above is checked out in {{working_dir}}. A user reported this issue:\n\n"
        "<issue>\n{{problem_statement}}\n</issue>\n\n"
        "Make the smallest change to the non-test files in {{working_dir}} that resolves the issue. The test files are\n"
        "not yours to edit. Read the relevant code, reproduce the problem with a short script, fix the source, confirm\n"
        "the fix, consider edge cases, then call submit."
    )
    """Task message. Variables: problem_statement, working_dir, command_docs. The default is the paper setup's, which
    every bundled config uses (so the text lives here once)."""
    next_step_template: str = "OBSERVATION:\n{{observation}}"
    """Message after each action. Variables: observation, working_dir."""
    next_step_no_output_template: str = "Your command ran successfully and did not produce any output."
    """Message after an action that printed nothing."""
    next_step_truncated_observation_template: str = (
        "Observation: {{observation}}<response clipped><NOTE>Observations longer than {{max_observation_length}} "
        "characters are cut; {{elided_chars}} characters were left out. Narrow your command (grep, head, sed -n).</NOTE>"
    )
    """Message after an action whose output was too long."""
    max_observation_length: int = 100_000
    """Observations longer than this many characters are cut."""
    command_cancelled_timeout_template: str = (
        "The command '{{command}}' was cancelled because it took more than {{timeout}} seconds. "
        "Run it with a smaller input, in the background, or with a timeout of its own."
    )
    """Observation after an action was interrupted at the timeout."""
    shell_check_error_template: str = (
        "Your bash command contained syntax errors and was NOT executed. Fix them and try again; multi-line "
        "commands must follow their documented syntax. Here is the output of `bash -n`:\n{{bash_stdout}}\n{{bash_stderr}}"
    )
    """Observation after an action that bash could not parse. Variables: bash_stdout, bash_stderr."""
    strategy_template: str | None = None
    """Appended to the instance message after a newline, as SWE-agent does (one message: the task's, never elided)."""
    demonstration_template: str | None = None
    """With `demonstrations`: one user message showing each demonstration. Variable: demonstration (its messages,
    system prompt left out, joined by newlines)."""
    demonstrations: list[Path] = []
    """Recorded trajectories (`.traj` JSON or SWE-agent's demo `.yaml`, both with a `history`) shown before the task.
    Relative paths are read from $SWE_AGENT_CONFIG_ROOT when set, else the current folder, else the OEC checkout."""
    put_demos_in_history: bool = False
    """Put each demonstration's messages (system prompt left out) into the history as they were, instead of one
    `demonstration_template` message."""

    @field_validator("demonstrations")
    @classmethod
    def _resolve_demonstrations(cls, paths: list[Path]) -> list[Path]:
        return [resolve_demonstration_path(path) for path in paths]

    def observation_message(self, observation: str, *, lenient: bool = False, **state: Any) -> str:
        """What the model is shown after an action: its output, a no-output note, or the output cut at the limit.

        `state` holds what the bundles' state commands reported (e.g. `open_file`, `diff`), as SWE-agent passes it;
        `lenient` (see `render`) when those commands decide which variables exist."""
        limit = self.max_observation_length
        variables = {"working_dir": "", **state}
        if not observation.strip():
            return render(self.next_step_no_output_template, lenient, observation=observation, **variables)
        if len(observation) > limit:
            return render(self.next_step_truncated_observation_template, lenient, observation=observation[:limit],
                          max_observation_length=limit, elided_chars=len(observation) - limit, **variables)
        return render(self.next_step_template, lenient, observation=observation, **variables)


def resolve_demonstration_path(path: Path) -> Path:
    """Where a demonstration named in a config lives (SWE-agent reads relative paths from its config root)."""
    if path.is_absolute():
        return path
    if "SWE_AGENT_CONFIG_ROOT" in os.environ:
        return Path(os.environ["SWE_AGENT_CONFIG_ROOT"]) / path
    return path.resolve() if path.exists() else REPO_ROOT / path


@lru_cache(maxsize=256)
def _compile(template: str, lenient: bool) -> jinja2.Template:
    environment = jinja2.Environment(undefined=jinja2.Undefined if lenient else jinja2.StrictUndefined, keep_trailing_newline=True)
    return environment.from_string(template)


def render(template: str, lenient: bool = False, /, **variables: Any) -> str:
    """The template filled in; an unknown variable is an error, or with `lenient` empty text, as in SWE-agent.

    Lenient is for agents whose bundles have state commands: which variables those report (`open_file`, `diff`) is
    known only once they ran, and SWE-agent's own templates rely on missing ones rendering empty."""
    try:
        return _compile(template, lenient).render(**variables)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template uses an unknown variable ({exc.message}); available: {sorted(variables)}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error at line {exc.lineno}: {exc.message}") from None
