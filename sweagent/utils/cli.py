"""One command-line style for every stage: snake_case options (older spellings still accepted), usage errors on one
line naming the script, and bad input (`OECError`) reported as one line with exit status 2.

Stages whose options are a pydantic model also take `--config FILE` (repeatable) and any `--dotted.key VALUE`,
read by the loader `sweagent run` uses (`config_loading.build_config`), so a bad value is named by its key path and
blamed on the file or the command line it came from.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sweagent.utils.errors import OECError


def with_aliases(argv: Sequence[str], aliases: dict[str, str]) -> list[str]:
    """`argv` with old option spellings (`--output-dir`, `--workers`) replaced by today's, also in `--opt=value`."""
    result = []
    for token in argv:
        name, equals, value = token.partition("=")
        result.append(aliases.get(name, name) + equals + value if name in aliases else token)
    return result


class StageParser(argparse.ArgumentParser):
    """argparse with one-line usage errors (`PROG: MESSAGE (see PROG --help)`, exit 2) and option aliases."""

    def __init__(self, *args: Any, aliases: dict[str, str] | None = None, **kwargs: Any):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.aliases = aliases or {}

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> tuple[Any, list[str]]:  # type: ignore[override]
        argv = sys.argv[1:] if args is None else args
        return super().parse_known_args(with_aliases(argv, self.aliases), namespace)


def given_options(args: argparse.Namespace, keys: dict[str, str]) -> list[tuple[str, Any]]:
    """(config key, value) for each option given on the command line (defaults are `argparse.SUPPRESS`ed)."""
    return [(keys.get(dest, dest), value) for dest, value in vars(args).items() if dest in keys or dest not in ("config",)]


def run_stage(prog: str, body: Callable[[], int]) -> int:
    """Run a command's body; bad input becomes `PROG: error: MESSAGE` on stderr and exit status 2."""
    try:
        return body()
    except OECError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
