"""`agent.templates`: the Jinja templates that turn the task and each observation into messages."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2
from pydantic import BaseModel, ConfigDict


class TemplateError(ValueError):
    """A template that uses an unknown variable or has a syntax error."""


class TemplateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system_template: str = "You are a helpful assistant that can interact with a computer to solve tasks."
    """First message. Variables: command_docs, working_dir."""
    instance_template: str = (
        "<uploaded_files>\n{{working_dir}}\n</uploaded_files>\n"
        "A Python code repository is in {{working_dir}}. Here is an issue reported by a user:\n\n"
        "<issue>\n{{problem_statement}}\n</issue>\n\n"
        "Change the non-test files in {{working_dir}} so that the issue is resolved. The tests are not yours to edit.\n"
        "Suggested steps: find the relevant code; reproduce the problem with a small script run with `python`; "
        "fix the source; rerun the script; think about edge cases; then submit."
    )
    """Task message. Variables: problem_statement, working_dir, command_docs."""
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

    def observation_message(self, observation: str) -> str:
        """What the model is shown after an action: its output, a no-output note, or the output cut at the limit."""
        limit = self.max_observation_length
        if not observation.strip():
            return render(self.next_step_no_output_template, observation=observation, working_dir="")
        if len(observation) > limit:
            return render(self.next_step_truncated_observation_template, observation=observation[:limit],
                          max_observation_length=limit, elided_chars=len(observation) - limit)
        return render(self.next_step_template, observation=observation, working_dir="")


@lru_cache(maxsize=256)
def _compile(template: str) -> jinja2.Template:
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return environment.from_string(template)


def render(template: str, **variables: Any) -> str:
    try:
        return _compile(template).render(**variables)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template uses an unknown variable ({exc.message}); available: {sorted(variables)}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error at line {exc.lineno}: {exc.message}") from None
