"""Python packages that tool bundles' helpers need (flake8 for lint-on-edit), kept out of the task's environment.

A bundle names them in its config.yaml (`python_packages: [flake8]`, an OEC key). They are pinned in OEC's own
environment. The sandbox shows that environment read-only, so helpers run with OEC's interpreter and nothing is
copied. A container cannot see it and has no network, so the installed files of those distributions (with their
requirements) are copied from OEC's environment into a folder that is uploaded next to the tools; helpers put it
first on `sys.path` of the image's `python3`. Only pure-Python packages work that way, which flake8 and its
checkers are.
"""

from __future__ import annotations

import re
import shutil
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from sweagent.utils.scratch import process_scratch_dir

if TYPE_CHECKING:
    from sweagent.environment.swe_env import SWEEnv

TOOL_SITE = "/root/tools/.oec-site"
"""Where a container gets the packages (the sandbox reads OEC's environment in place)."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


class ToolPackageError(RuntimeError):
    """A package a bundle needs is not installed in OEC's environment."""


def distributions(names: tuple[str, ...]) -> list[metadata.Distribution]:
    """The named distributions and everything they require (extras and environment markers left out)."""
    found: dict[str, metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = pending.pop()
        key = name.lower().replace("_", "-")
        if key in found:
            continue
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ToolPackageError(f"{name}: needed by a tool bundle (python_packages) but not installed in OEC's environment "
                                   "(run scripts/setup.sh)") from None
        found[key] = distribution
        for requirement in distribution.requires or []:
            match = _NAME.match(requirement)
            if match and ";" not in requirement:
                pending.append(match.group(0))
    return list(found.values())


@lru_cache(maxsize=8)
def site_folder(names: tuple[str, ...]) -> Path:
    """A host folder holding the installed files (code and `.dist-info`, for entry points) of `names` and their
    requirements, made once per process in its scratch folder."""
    folder = process_scratch_dir() / ("tool-site-" + "-".join(sorted(names)))
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    for distribution in distributions(names):
        for file in distribution.files or []:
            if file.parts[0].startswith("..") or "__pycache__" in file.parts:
                continue  # scripts installed outside site-packages; bytecode is rebuilt by the image's Python
            source = Path(str(distribution.locate_file(file)))
            if source.is_file():
                target = staging / file
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def provide(env: SWEEnv, names: tuple[str, ...]) -> dict[str, str]:
    """Make `names` importable by the tool interpreter in `env`; the registry entries that tell helpers how:
    TOOL_PYTHON (the interpreter) and TOOL_SITE (a folder to put first on its path, or empty)."""
    interpreter = env.config.deployment.tool_python()
    if interpreter is not None:
        return {"TOOL_PYTHON": interpreter, "TOOL_SITE": ""}
    if not names:
        return {"TOOL_PYTHON": "python3", "TOOL_SITE": ""}
    env.upload(site_folder(names), TOOL_SITE)
    return {"TOOL_PYTHON": "python3", "TOOL_SITE": TOOL_SITE}
