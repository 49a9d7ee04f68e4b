"""`python -m oec.evaluation.swesmith_eval ARGS`: SWE-smith's harness (`python -m swesmith.harness.eval ARGS`) for
repositories that OEC has profiles for, with no network.

SWE-smith's harness finds a repository's profile in its registry and, before it checks an instance's branch out,
asks GitHub whether the repository is private (to copy an SSH key in for `git fetch`). OEC's images already hold
every instance's branch, so nothing is fetched: for each repository of the instance file that has an OEC profile,
this registers SWE-smith's profile (its own, or one made from ours) and records it as public, then runs
`swesmith.harness.eval` as `__main__`, unchanged: its argument parsing, containers, grading and reports. Instances of
repositories without an OEC profile are left to SWE-smith entirely, as on a cluster.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from sweagent.environment.task_repos.profiles import RepoProfileError, get_profile
from sweagent.environment.container.swesmith_profiles import swesmith_profile
from sweagent.instance import load_instances


def prepare_registry(dataset: Path) -> None:
    """Register (and mark public) SWE-smith's profile of every repository of `dataset` that OEC has a profile for."""
    for repo in sorted({instance.repo for instance in load_instances(dataset)}):
        try:
            profile = get_profile(repo)
        except RepoProfileError:
            continue
        swesmith_profile(profile)._cache_repo_private = False  # what the GitHub check would answer; nothing is fetched


def main() -> None:
    prepare_registry(Path(sys.argv[sys.argv.index("--dataset_path") + 1]))
    runpy.run_module("swesmith.harness.eval", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
