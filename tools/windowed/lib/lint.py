"""Lint-on-edit for the windowed editors: flake8 before and after an edit; only errors the edit introduced count.

flake8 runs with the tools' own interpreter (registry TOOL_PYTHON: OEC's environment in the sandbox; in a container
the image's python3 with OEC's copy of flake8 from TOOL_SITE, see sweagent/tools/tool_packages.py), never with the
task's packages, so the task's environment needs nothing installed. Errors above the edited lines, and errors that
were there before (their lines shifted by the edit), are not the edit's.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import NamedTuple

from windowed_file import registry  # the registry module, found where windowed_file looks for it

DEFAULT_SELECT = "F821,F822,F831,E111,E112,E113,E999,E902"
"""SWE-agent's selection: undefined names, duplicate arguments, indentation and syntax errors."""


RUN_FLAKE8 = ("import sys; site = sys.argv.pop(1); site and sys.path.insert(0, site); "
              "from flake8.main.cli import main; sys.exit(main(sys.argv[1:]))")


class LintError(NamedTuple):
    line: int
    column: int
    message: str


class LinterMissing(Exception):
    """flake8 cannot run in the tool environment."""


def lint(path: Path) -> list[LintError] | None:
    """flake8's errors for a Python file; None for other files."""
    if path.suffix != ".py":
        return None
    python = registry.get("TOOL_PYTHON", "python3") or "python3"
    # -I: the task's PYTHONPATH and site settings stay out; TOOL_SITE (a container's copy of the packages) goes first
    command = [python, "-I", "-c", RUN_FLAKE8, registry.get("TOOL_SITE", "") or "",
               "--isolated", f"--select={registry.get('LINT_SELECT', DEFAULT_SELECT)}", str(path)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LinterMissing(str(exc)) from None
    if result.returncode not in (0, 1) or "Traceback" in result.stderr:  # e.g. no flake8 for this interpreter
        raise LinterMissing(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}")
    errors = []
    for line in result.stdout.splitlines():
        prefix, _, message = line.partition(": ")
        parts = prefix.rsplit(":", 2)
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            errors.append(LintError(int(parts[1]), int(parts[2]), message))
    return errors


def new_errors(before: list[LintError], after: list[LintError], first: int, last: int, n_new_lines: int) -> list[LintError]:
    """Errors in `after` that the edit of 1-based lines `first`..`last` (now `n_new_lines` lines) introduced."""
    shift = n_new_lines - (last - first + 1)
    expected = {e if e.line < first else e._replace(line=e.line + shift) for e in before if not first <= e.line <= last}
    return [e for e in after if e not in expected and e.line >= first]


def check_edit(wf, edit, first: int, last: int, n_new_lines: int) -> str | None:  # type: ignore[no-untyped-def]
    """Apply `edit()` to the windowed file `wf`; if it adds lint errors, undo it and return the report to show."""
    if wf.path.suffix != ".py":
        edit()
        return None
    try:
        before = lint(wf.path) or []
    except LinterMissing as exc:
        edit()
        print(f"(edit not linted: flake8 cannot run in the tool environment: {exc})")
        return None
    edit()
    introduced = new_errors(before, lint(wf.path) or [], first, last, n_new_lines)
    if not introduced:
        return None
    applied = wf.render()
    wf.undo()
    return LINT_REPORT.format(errors="\n".join(f"- {e.message}" for e in introduced), applied=applied, original=wf.render())


LINT_REPORT = """Your edit was NOT applied: it introduces new syntax, indentation or undefined-name errors.

ERRORS:
{errors}

With your edit the file would have looked like this:
------------------------------------------------
{applied}
------------------------------------------------

It still looks like this:
------------------------------------------------
{original}
------------------------------------------------

Fix the edit and try again (the same edit fails the same way)."""
