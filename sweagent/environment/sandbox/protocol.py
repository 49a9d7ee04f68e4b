"""The wire format between the host and the sandbox server: one JSON object per line, swerex's own models inside.

Host to sandbox: `{"id": n, "method": "<AbstractRuntime method>", "request": <swerex request model>}`.
Sandbox to host: `{"id": n, "response": <swerex response model>}` or `{"id": n, "exception": <_ExceptionTransfer>}`.
Exceptions are re-raised on the host as the same swerex (or builtin, or pexpect) exception type, so callers handle
`CommandTimeoutError` and friends exactly as with any other swerex runtime. Every line is bounded: the server cuts
command output to MAX_OUTPUT_CHARS, and the host refuses a reply line longer than MAX_REPLY_BYTES.
This module is the framing both sides share and imports nothing beyond the standard library, so the server starts
fast; the models each method carries, which the host checks every reply against, are in `messages.py`.
"""

from __future__ import annotations

import json
import traceback
from typing import Any, BinaryIO

METHOD_NAMES = ("is_alive", "create_session", "run_in_session", "close_session", "execute", "read_file",
                "write_file", "upload", "close")
"""swerex AbstractRuntime methods the server answers."""


MAX_OUTPUT_CHARS = 4 * 1024 * 1024
"""Longest command output the server sends (head and tail kept); ASCII JSON escapes keep a line under 6 bytes a char."""
MAX_REPLY_BYTES = 32 * 1024 * 1024
"""Longest reply line the host reads; anything longer means a broken or hostile server, and the sandbox is killed."""


class ProtocolError(ValueError):
    """A line that is not a well-formed message of the protocol."""


def read_line(stream: BinaryIO, limit: int, *, truncate: bool = False) -> bytes:
    """One line of at most `limit` bytes (b"" at the end of the stream). A longer line raises ProtocolError, or
    with `truncate` is cut and the rest of it skipped, so no line can make the reader hold more than `limit`."""
    line = stream.readline(limit + 1)
    if len(line) <= limit or line.endswith(b"\n"):
        return line
    if not truncate:
        raise ProtocolError(f"a line longer than {limit} bytes")
    while (rest := stream.readline(limit)) and not rest.endswith(b"\n"):
        pass
    return line[:limit] + b"\n"


def truncate_output(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    """Head and tail of a command's output, with a note of how much was left out."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters of output omitted ...]\n{text[-half:]}"


def encode(message: dict[str, Any]) -> bytes:
    """One message as one line (ASCII JSON, so output with any bytes cannot break the framing)."""
    return json.dumps(message, default=str).encode("ascii") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """A request (or any message) with an integer id; ProtocolError otherwise."""
    try:
        message = json.loads(line)
    except ValueError:
        raise ProtocolError(f"not JSON: {line[:200]!r}") from None
    if not isinstance(message, dict) or type(message.get("id")) is not int:
        raise ProtocolError(f"not a sandbox protocol message: {line[:200]!r}")
    return message


def exception_to_wire(exc: BaseException) -> dict[str, Any]:
    """An exception as swerex's `_ExceptionTransfer` fields."""
    return {"message": str(exc), "class_path": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "traceback": "".join(traceback.format_exception(exc)), "extra_info": getattr(exc, "extra_info", {}) or {}}
