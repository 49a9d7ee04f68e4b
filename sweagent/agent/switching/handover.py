"""The hand-over: the history one profile built, rewritten so that the other profile can continue it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sweagent.tools.parsing import convert_messages

if TYPE_CHECKING:
    from sweagent.agent.agents import Profile
    from sweagent.environment.swe_env import SWEEnv


def hand_over(history: list[dict[str, Any]], source: Profile, target: Profile, env: SWEEnv,
              opening: list[dict[str, Any]], *, reset: bool) -> list[dict[str, Any]]:
    """The history `target` continues from: its own opening messages, then every earlier turn in its parse format.

    The target's tools are installed first when its bundles differ, so its commands exist in the environment;
    with `reset` only the opening messages are kept (the repository keeps its state either way).
    """
    if [b.path for b in target.tools.bundles] != [b.path for b in source.tools.bundles]:
        target.tools.install(env, env.config.working_dir)
    if reset:
        return opening
    # Earlier calls may use tools only the source had (e.g. its own submit), so both sets are known here.
    commands = {c.name: c for c in [*source.tools.commands, *target.tools.commands]}
    return opening + convert_messages(history[len(opening):], source.parser, target.parser, list(commands.values()))
