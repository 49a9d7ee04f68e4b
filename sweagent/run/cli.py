"""`sweagent <subcommand> ...`: dispatches to the module that owns each subcommand (each exposes `main(argv)`)."""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import sys
import threading
from types import TracebackType
from typing import NoReturn

from sweagent.utils.errors import OECError
from sweagent.utils.log import setup_cli_output

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("sweagent.run.run_single", "run the agent on one instance"),
    "run-batch": ("sweagent.run.run_batch", "run the agent on many instances (several rollouts each)"),
    "merge-preds": ("sweagent.run.merge_preds", "merge the .pred files of run directories into preds.json"),
    "serve-local": ("sweagent.local_models.cli", "start, stop or inspect the local GGUF model servers"),
    "inspect": ("sweagent.inspector.cli", "browse rollouts (student/expert turns, switch points) or write an HTML report"),
}


CONSOLE_LOG_LEVELS = {"run": logging.INFO}
"""What OEC's own loggers show on the console per subcommand (default: warnings); run-batch has its progress line."""


class _ConsoleLines(logging.Handler):
    """OEC's log records on the console, one line each: a traceback goes to the rollout's log file, never here."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            lines = record.getMessage().strip().splitlines() or [""]
            print(f"{record.levelname.lower()}: {lines[0]}", file=sys.stderr)  # sys.stderr as it is now (redirected)
        except Exception:
            self.handleError(record)


def _console_logging(level: int) -> None:
    """Send the `sweagent` loggers to one-line console output instead of whatever root handler a library set up."""
    logger = logging.getLogger("sweagent")
    logger.propagate = False
    handler = _ConsoleLines(level)
    logger.handlers = [h for h in logger.handlers if not isinstance(h, _ConsoleLines)] + [handler]


def _usage() -> str:
    lines = ["usage: sweagent <subcommand> [options]", "", "subcommands:"]
    lines += [f"  {name:<12} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def _quiet_about_interrupts(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """The hook for a Ctrl-C that `main` reported and let go on: no traceback. Python then shuts down as usual
    (atexit cleanup, flushed output) and ends killed by SIGINT, which is what tells a calling shell that Ctrl-C ended
    the command, so its script or loop stops too; an exit status of 130 would read as a normal end."""
    if not issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"sweagent: unknown subcommand '{name}'\n\n{_usage()}", file=sys.stderr)
        return 2
    setup_cli_output()
    _console_logging(CONSOLE_LOG_LEVELS.get(name, logging.WARNING))
    with _early_environment(name, rest):
        module = importlib.import_module(SUBCOMMANDS[name][0])
        try:
            return int(module.main(rest) or 0)
        except OECError as exc:  # bad input a subcommand did not report itself: one line, as everywhere
            print(f"sweagent {name}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"sweagent {name}: interrupted", file=sys.stderr)
            sys.excepthook = _quiet_about_interrupts
            raise


def _early_environment(name: str, argv: list[str]) -> contextlib.AbstractContextManager[None]:
    """`sweagent run` starts its sandbox while the agent's modules load (`sweagent/run/early_start.py`)."""
    if name != "run":
        return contextlib.nullcontext()
    from sweagent.run import early_start

    return early_start.starting(argv)


def entry() -> NoReturn:
    """The `sweagent` console script: `main`, then `exit_without_teardown`."""
    exit_without_teardown(main())


def exit_without_teardown(code: int) -> NoReturn:
    """Exit as Python does (other threads joined, atexit handlers run: log files closed, scratch handed to `rm`;
    standard streams flushed) but without freeing every object one by one first, which takes about 0.1 s once
    pydantic's schemas are loaded, as long as a whole one-instance run's steps. A Python without the interpreter's
    thread shutdown hook exits the usual way."""
    join_threads = getattr(threading, "_shutdown", None)  # what the interpreter itself calls first at exit
    if join_threads is None:
        sys.exit(code)
    join_threads()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
