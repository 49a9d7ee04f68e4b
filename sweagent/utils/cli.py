"""One command-line style for every stage: SWE-agent's snake_case options (older spellings still accepted), usage
errors on one line naming the script, and bad input (`OECError`) reported as one line with exit status 2.

Stages whose options are a pydantic model also take `--config FILE` (repeatable) and any `--dotted.key VALUE`,
read by the loader `sweagent run` uses (`config_loading.build_config`), so a bad value is named by its key path and
blamed on the file or the command line it came from.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from sweagent.utils.errors import OECError


class StageParser(argparse.ArgumentParser):
    """argparse with one-line usage errors (`PROG: MESSAGE (see PROG --help)`, exit 2) and no abbreviations (an
    abbreviation would swallow a dotted config key). Old spellings are extra option strings of the same option:
    `add_argument("--num_workers", "--workers")`."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def run_stage(prog: str, body: Callable[[], int]) -> int:
    """Run a command's body; bad input becomes `PROG: error: MESSAGE` on stderr and exit status 2."""
    try:
        return body()
    except OECError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2

