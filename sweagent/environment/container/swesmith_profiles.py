"""SWE-smith's view of OEC's repository profiles: its registry's own profile, or one registered from ours.

SWE-smith's tools (its harness, its image names) look a repository up in `swesmith.profiles.registry` by the
instance's `repo`. Where the registry has it (addict, boltons), that profile is used as it is. For any other
profile OEC registers a Python profile of the same shape, made from the profile's data: owner, name and commit from
its `repo`, its org both for the (absent) mirror and for the image name, and its test timeout. Its test command is
SWE-smith's default for Python, which OEC's images support (`images.py`).
"""

from __future__ import annotations

import dataclasses
import re

from swesmith.profiles import registry
from swesmith.profiles.base import RepoProfile as SwesmithProfile
from swesmith.profiles.python import PythonProfile

from sweagent.environment.task_repos.profiles import RepoProfile, RepoProfileError, get_profile


def swesmith_profile(profile: RepoProfile) -> SwesmithProfile:
    """SWE-smith's profile for the repository, registered from ours first when its registry has none."""
    if profile.repo not in registry.keys():
        parts = profile.swesmith_parts()
        settings = {
            "owner": parts["owner"], "repo": parts["name"], "commit": parts["commit"], "org_gh": parts["org"],
            "org_dh": parts["org"], "timeout": int(profile.test_timeout_s),
        }
        fields = [(name, type(value), dataclasses.field(default=value)) for name, value in settings.items()]
        class_name = "Oec_" + re.sub(r"\W", "_", profile.repo_name)
        registry.register_profile(dataclasses.make_dataclass(class_name, fields, bases=(PythonProfile,)))
    return registry.get(profile.repo)


def profile_for_repo(repo: str) -> SwesmithProfile:
    """SWE-smith's profile for an instance's `repo`: from OEC's profile when there is one, else its registry's own."""
    try:
        return swesmith_profile(get_profile(repo))
    except RepoProfileError:
        if repo in registry.keys():
            return registry.get(repo)
        raise


def image_name(profile: RepoProfile) -> str:
    """The docker image of the repository, by SWE-smith's naming rule (`<org>/swesmith.<arch>.<owner>_1776_<name>.<commit>`)."""
    return swesmith_profile(profile).image_name
