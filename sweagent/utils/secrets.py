"""Secrets masked by value in everything OEC writes or prints, whichever stage or library produced the text.

Masking by key name (`api_key: ***`) misses a key that reaches a file some other way: a `${VAR}` expanded into a
request header, an error message from a provider that quotes the key, a command that echoes a variable. So every
secret value is known here and replaced by `MASK` at the few places text leaves the process: the atomic file writer
(`.traj`, `.pred`, configs, reports, verdicts, SFT rows), the log handlers (`RedactingFilter`) and the console
(`redact_standard_streams`).

A secret is (1) the value of an environment variable whose name ends in `_KEY`, `_TOKEN`, `_SECRET` or `_PASSWORD`
or contains `API_KEY`, or (2) a value registered by the code that resolved it: the config loader (every `${VAR}`
expanded into a header, an `env` mapping or a secret-named key, and every value of a secret-named key), a model's
`$VAR` api_key, the judge's `--api_key_env`. Values shorter than `MIN_SECRET_LENGTH` characters are never masked:
placeholders such as `local`, `EMPTY` or `true` would otherwise vanish from every trajectory, and no real key is that
short.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

MASK = "***redacted***"
MIN_SECRET_LENGTH = 8
_SECRET_ENV_NAME = re.compile(rb"(_KEY|_TOKEN|_SECRET|_PASSWORD)$|API_KEY", re.IGNORECASE)  # os.environb's names
_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask `value` in every later output (ignored when shorter than MIN_SECRET_LENGTH)."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _registered.add(value)


def secret_values() -> frozenset[str]:
    """The registered values plus those of secret-named environment variables, read now (the environment changes)."""
    named = (os.fsdecode(value) for name, value in os.environb.items() if _SECRET_ENV_NAME.search(name))  # decodes only these
    from_env = {value for value in named if len(value) >= MIN_SECRET_LENGTH}
    with _lock:
        return frozenset(_registered | from_env)


@functools.lru_cache(maxsize=16)
def _forms(values: frozenset[str]) -> tuple[tuple[str, ...], re.Pattern[str]]:
    """Each value as written raw and inside JSON strings (quotes, backslashes, non-ASCII escaped), longest first."""
    forms = {form for value in values for form in (value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1])}
    ordered = tuple(sorted(forms, key=len, reverse=True))
    return ordered, re.compile("|".join(map(re.escape, ordered)))


def redact_text(text: str) -> str:
    """`text` with every secret replaced by MASK."""
    return _masker(secret_values())(text)


def redact_data(data: Any) -> Any:
    """A copy of JSON-like data (dicts, lists, strings) with every secret in its strings replaced by MASK (the
    secrets are read once for the whole structure)."""
    mask = _masker(secret_values())

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return mask(item)
        if isinstance(item, dict):
            return {walk(key): walk(value) for key, value in item.items()}
        if isinstance(item, (list, tuple)):
            return [walk(element) for element in item]
        return item

    return walk(data)


def _masker(values: frozenset[str]) -> Callable[[str], str]:
    """A function masking `values` in a text."""
    if not values:
        return lambda text: text
    forms, pattern = _forms(values)

    def mask(text: str) -> str:
        if not text or not any(form in text for form in forms):  # the usual case, much faster than the expression
            return text
        return pattern.sub(MASK, text)

    return mask


class RedactingFilter(logging.Filter):
    """Put on a log handler: the message, its arguments and any traceback reach the handler with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_text(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


class _RedactingStream:
    """A text stream that masks secrets in each write and passes everything else to the stream it wraps."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact_text(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def redact_standard_streams() -> None:
    """Mask secrets in everything printed to stdout/stderr from now on (print, rich consoles, log stream handlers)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _RedactingStream):
            setattr(sys, name, _RedactingStream(stream))
