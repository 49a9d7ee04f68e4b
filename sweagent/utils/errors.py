"""Bad input in OEC: the one error base class every command catches, and the one-line form of a validation error."""

from __future__ import annotations

from pydantic import ValidationError


class OECError(ValueError):
    """Input OEC cannot use (a file, a config key, an option); the message is one line naming it and what was
    expected. Every stage's error type derives from it, so every command line turns it into that line and exit 2."""


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """`key 'a.b': what was expected`, for the first error (one line, naming the key path)."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in (prefix.split(".") if prefix else []) + list(first["loc"])) or "(top level)"
    return f"key '{where}': {first['msg'].removeprefix('Value error, ')}"
