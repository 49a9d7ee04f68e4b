"""`info.edited_files30/50/70`: the edited files around each change, as SWE-agent records them for reviewers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sweagent.environment.swe_env import SWEEnv

CONTEXT_SIZES = (30, 50, 70)


def edited_files_with_context(env: SWEEnv, patch: str) -> dict[str, str]:
    """For each context size, the changed regions of every edited file with that many lines around them."""
    from unidiff import PatchSet  # imported when a rollout ends with a patch, not at every start

    result = {f"edited_files{size}": "" for size in CONTEXT_SIZES}
    for patched_file in PatchSet(patch):
        if patched_file.is_removed_file:
            continue
        lines = env.read_file(f"{env.config.working_dir}/{patched_file.path}").splitlines()
        for size in CONTEXT_SIZES:
            shown: set[int] = set()
            for hunk in patched_file:
                shown.update(range(max(1, hunk.target_start - size), min(len(lines), hunk.target_start + hunk.target_length + size) + 1))
            body, previous = [], 0
            for number in sorted(shown):
                if previous and number != previous + 1:
                    body.append("...")
                body.append(f"{number}: {lines[number - 1]}")
                previous = number
            result[f"edited_files{size}"] += f"[File: {patched_file.path}]\n" + "\n".join(body) + "\n\n"
    return result
