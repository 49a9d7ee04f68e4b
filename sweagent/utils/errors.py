"""The one-line form of a pydantic validation error that every bad-input message in OEC uses."""

from __future__ import annotations

from pydantic import ValidationError


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """`key 'a.b': what was expected`, for the first error (one line, naming the key path)."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in (prefix.split(".") if prefix else []) + list(first["loc"])) or "(top level)"
    return f"key '{where}': {first['msg'].removeprefix('Value error, ')}"
