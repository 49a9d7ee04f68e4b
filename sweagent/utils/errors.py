"""Bad input in OEC: the one error base class every command catches, and the one-line form of a validation error."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class OECError(ValueError):
    """Input OEC cannot use (a file, a config key, an option); the message is one line naming it and what was
    expected. Every stage's error type derives from it, so every command line turns it into that line and exit 2."""


def user_key_path(loc: tuple[Any, ...], data: Any, missing: bool = False) -> tuple[str, ...]:
    """The key path a user wrote, from a pydantic error location: the union tags pydantic adds (`switching`,
    `litellm`, `function-after[...]`) are the segments that are no key of the data at that point, so they go.
    A missing key (`missing`) is kept as the last segment although the data lacks it."""
    path: list[str] = []
    node = data
    for index, part in enumerate(loc):
        key = str(part)
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif not (missing and index == len(loc) - 1):
            continue
        path.append(key)
    return tuple(path)


def describe_validation_error(exc: ValidationError, prefix: str = "", data: Any = None) -> str:
    """`key 'a.b': what was expected`, for the first error (one line, naming the key path). With the validated
    `data`, the path is the one the user wrote (`user_key_path`)."""
    first = exc.errors()[0]
    loc = user_key_path(first["loc"], data, first["type"] == "missing") if data is not None else tuple(first["loc"])
    where = ".".join(str(part) for part in (prefix.split(".") if prefix else []) + list(loc)) or "(top level)"
    return f"key '{where}': {first['msg'].removeprefix('Value error, ')}"
