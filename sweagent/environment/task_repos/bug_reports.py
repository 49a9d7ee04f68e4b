"""Problem statements for procedurally generated bugs, written from what the failing tests showed.

A statement reads like a user's bug report: which tests fail and the error each one printed (pytest's short
traceback, taken from the log of the buggy tree). It is built only from observed behaviour, never from the patch
or the name of the modifier that planted the bug, so it does not give the fix away. The wording is picked by a
hash of the instance, so rebuilding the task set reproduces every statement exactly.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

_SECTION = re.compile(r"^={3,} (?P<name>.+?) ={3,}$")
_BLOCK_HEADER = re.compile(r"^_{3,} (?P<name>.+?) _{3,}$")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
_RANDOM_HEX = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{16,}(?![0-9A-Za-z])")
_PYTEST_HINT = re.compile(r"^E\s+(Use -v to get|Full output truncated)")
_MAX_TRACEBACK_LINES = 14
_MAX_LINE_CHARS = 240
_SHOWN_TRACEBACKS = 2
_LISTED_TESTS = 8

_OPENINGS = (
    "After updating to this checkout of {package}, part of its test suite fails.",
    "Running the test suite of {package} on the current code gives failures that should not be there.",
    "I noticed that {package} ({version}) no longer behaves the way its tests expect.",
)
_CLOSINGS = (
    "Expected: these tests pass, as they did before. The tests look right to me; the library's behaviour changed.",
    "The tests themselves were not changed, so this looks like a regression in the library code.",
    "I would expect the library to behave as these tests describe.",
)


def failure_blocks(log: str) -> dict[str, list[str]]:
    """pytest's FAILURES/ERRORS sections as {block title (e.g. `Class.test_x`): traceback lines}."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    in_failures = False
    for line in log.splitlines():
        section = _SECTION.match(line)
        if section:
            in_failures = section["name"] in ("FAILURES", "ERRORS")
            current = None
            continue
        header = _BLOCK_HEADER.match(line) if in_failures else None
        if header:
            current = blocks.setdefault(header["name"], [])
        elif current is not None:
            current.append(line)
    return blocks


def _block_for(test_id: str, blocks: dict[str, list[str]]) -> list[str]:
    """The traceback pytest printed for a test id (`file::Class::test` is titled `Class.test`)."""
    title = ".".join(test_id.split("::")[1:])
    for name in (title, f"ERROR at setup of {title}", f"ERROR at teardown of {title}"):
        if name in blocks:
            return blocks[name]
    return []


def _clean(lines: list[str]) -> str:
    """Trim a traceback for a report: bounded length, no run-specific memory addresses or random ids."""
    # pytest's advice to rerun verbosely is about the tool, not the bug.
    lines = [line for line in lines if line.strip() and not _PYTEST_HINT.match(line)]
    if len(lines) > _MAX_TRACEBACK_LINES:
        lines = lines[: _MAX_TRACEBACK_LINES // 2] + ["    ..."] + lines[-_MAX_TRACEBACK_LINES // 2 :]
    trimmed = [line if len(line) <= _MAX_LINE_CHARS else line[:_MAX_LINE_CHARS] + " ..." for line in lines]
    text = _ADDRESS.sub("0x...", "\n".join(trimmed))
    # Random hex ids (uuids, guids) differ on every run; a mask of the same length keeps what a test says of them.
    return _RANDOM_HEX.sub(lambda match: "x" * len(match.group()), text)


def _error_kind(traceback: str) -> str:
    """`Wrong result` for assertion failures, else the exception's name, for the report's title.

    The last `E` block is the exception the test ended with (earlier ones belong to chained exceptions).
    """
    lines = traceback.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("E   ") and (i == 0 or not lines[i - 1].startswith("E   "))]
    if not starts:
        return "Test failure"
    name = lines[starts[-1]][4:].split(":", 1)[0].strip()
    if name == "AssertionError" or name.startswith("assert"):
        return "Wrong result"
    if re.fullmatch(r"[A-Za-z_][\w.]*", name):
        return f"{name.rsplit('.', 1)[-1]} raised"
    return "Test failure"


def write_problem_statement(
    *, package: str, version: str, instance_id: str, failing_tests: Sequence[str], log: str
) -> str:
    """A bug report about `failing_tests`, quoting what they printed in `log` (the buggy tree's test output)."""
    choice = int(hashlib.sha256(instance_id.encode()).hexdigest(), 16)
    blocks = failure_blocks(log)
    shown: list[tuple[str, str]] = []
    for test in failing_tests:
        traceback = _clean(_block_for(test, blocks))
        # The same test method inherited by two test classes would only repeat the first traceback.
        if traceback and test.split("::")[-1] not in {other.split("::")[-1] for other, _ in shown}:
            shown.append((test, traceback))
    shown = shown[:_SHOWN_TRACEBACKS]
    first_kind = _error_kind(shown[0][1]) if shown else "Test failure"
    first_name = failing_tests[0].split("::")[-1]

    parts = [f"{first_kind} in {package} {version} (`{first_name}`)", ""]
    parts.append(_OPENINGS[choice % len(_OPENINGS)].format(package=package, version=version))
    for test, traceback in shown:
        parts += ["", f"`{test}` fails:", "", "```", traceback, "```"]
    if len(failing_tests) > len(shown):
        listed = ", ".join(f"`{test}`" for test in failing_tests[:_LISTED_TESTS])
        more = f" and {len(failing_tests) - _LISTED_TESTS} more" if len(failing_tests) > _LISTED_TESTS else ""
        parts += ["", f"{len(failing_tests)} tests fail in total: {listed}{more}."]
    parts += ["", _CLOSINGS[(choice // len(_OPENINGS)) % len(_CLOSINGS)]]
    return "\n".join(parts) + "\n"
