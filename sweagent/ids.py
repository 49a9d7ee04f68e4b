"""Instance and traj ids become folder and file names, so every id is checked where it enters OEC.

An id is what SWE-smith and SWE-bench use: letters, digits, `.`, `_` and `-` (`owner__repo.abc1234.func_pm_x__k2`,
`django__django-11099`), starting with a letter or digit, at most `MAX_ID_LENGTH` characters; a traj id may add a
rollout suffix `__r<k>`, or `__r<k>__b<j>` for branch j of rollout k (`run/branching.py`). Nothing else is accepted,
so an id can never climb out of an output folder (`..`, `/`, an empty name), hide a file (a leading `.`), look like
a command-line option (a leading `-`), split a log line (newlines, control characters) or overflow a file-name limit (255 bytes, with room for `.info.log` and the atomic
writer's temporary names).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator

MAX_ID_LENGTH = 200
_ID = rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_ID_LENGTH - 1}}}"
_INSTANCE_ID = re.compile(_ID)
_TRAJ_ID = re.compile(rf"{_ID}(?:__r[0-9]{{1,6}}(?:__b[0-9]{{1,6}})?)?")
_EXPECTED = (f"letters, digits, '.', '_' or '-' (as in SWE-smith/SWE-bench ids), starting with a letter or digit, "
             f"at most {MAX_ID_LENGTH} characters")


def _shown(value: object) -> str:
    """The offending value on one line (ascii() escapes newlines and control characters), shortened if long."""
    if isinstance(value, str) and len(value) > 60:
        return f"{ascii(value[:40])}... ({len(value)} characters)"
    return ascii(value)


def id_problem(value: object, *, traj: bool = False) -> str | None:
    """Why `value` cannot be an instance id (a traj id with `traj`), or None when it can."""
    pattern = _TRAJ_ID if traj else _INSTANCE_ID
    if isinstance(value, str) and pattern.fullmatch(value):
        return None
    suffix = " plus an optional rollout suffix __r<k> or __r<k>__b<j>" if traj else ""
    return f"expected {'a traj' if traj else 'an instance'} id of {_EXPECTED}{suffix}, got {_shown(value)}"


def check_id(value: str, where: str, error: type[ValueError], *, traj: bool = False) -> str:
    """`value` if it is a valid id, else `error` (the caller's own error class) starting with `where`."""
    problem = id_problem(value, traj=traj)
    if problem is not None:
        raise error(f"{where}: {problem}")
    return value


def id_from_name(name: str) -> str:
    """A valid id made from a folder name (a local repository): other characters become `_`, leading ones go."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip("._-")[:MAX_ID_LENGTH] or "repo"


def branch_traj_id(prefix_id: str, branch: int) -> str:
    """The traj id of branch `branch` of the rollout `prefix_id` (`<iid>__r<k>`)."""
    return f"{prefix_id}__b{branch}"


def _field_check(traj: bool) -> Callable[[str], str]:
    """A pydantic after-validator; pydantic adds the key, the instance/prediction reader the file and row."""
    def check(value: str) -> str:
        problem = id_problem(value, traj=traj)
        if problem is not None:
            raise ValueError(problem)
        return value

    return check


InstanceId = Annotated[str, AfterValidator(_field_check(traj=False))]
TrajId = Annotated[str, AfterValidator(_field_check(traj=True))]
