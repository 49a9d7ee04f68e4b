"""The wire format between the host and the sandbox server: one JSON object per line, swerex's own models inside.

Host to sandbox: `{"id": n, "method": "<AbstractRuntime method>", "request": <swerex request model>}`.
Sandbox to host: `{"id": n, "response": <swerex response model>}` or `{"id": n, "exception": <_ExceptionTransfer>}`.
Exceptions are re-raised on the host as the same swerex (or builtin, or pexpect) exception type, so callers handle
`CommandTimeoutError` and friends exactly as with any other swerex runtime. Every line is bounded: the server cuts
command output to MAX_OUTPUT_CHARS, and the host refuses a reply line longer than MAX_REPLY_BYTES.
"""

from __future__ import annotations

import builtins
import json
import traceback
from dataclasses import dataclass
from typing import Any, BinaryIO

import pexpect.exceptions
from pydantic import TypeAdapter

import swerex.exceptions
from swerex.runtime.abstract import (
    Action,
    CloseResponse,
    CloseSessionRequest,
    CloseSessionResponse,
    Command,
    CommandResponse,
    CreateSessionRequest,
    CreateSessionResponse,
    IsAliveResponse,
    Observation,
    ReadFileRequest,
    ReadFileResponse,
    UploadRequest,
    UploadResponse,
    WriteFileRequest,
    WriteFileResponse,
    _ExceptionTransfer,
)


@dataclass(frozen=True)
class Method:
    """The request and response types of one runtime method (`request` is None for methods without arguments)."""

    request: TypeAdapter[Any] | None
    response: TypeAdapter[Any]


METHODS: dict[str, Method] = {
    "is_alive": Method(None, TypeAdapter(IsAliveResponse)),
    "create_session": Method(TypeAdapter(CreateSessionRequest), TypeAdapter(CreateSessionResponse)),
    "run_in_session": Method(TypeAdapter(Action), TypeAdapter(Observation)),
    "close_session": Method(TypeAdapter(CloseSessionRequest), TypeAdapter(CloseSessionResponse)),
    "execute": Method(TypeAdapter(Command), TypeAdapter(CommandResponse)),
    "read_file": Method(TypeAdapter(ReadFileRequest), TypeAdapter(ReadFileResponse)),
    "write_file": Method(TypeAdapter(WriteFileRequest), TypeAdapter(WriteFileResponse)),
    "upload": Method(TypeAdapter(UploadRequest), TypeAdapter(UploadResponse)),
    "close": Method(None, TypeAdapter(CloseResponse)),
}

# Only these modules may name the class of a re-raised exception: a message from the sandbox never makes the host
# import anything.
_EXCEPTION_MODULES = {module.__name__: module for module in (builtins, swerex.exceptions, pexpect.exceptions)}


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


def decode_reply(line: bytes) -> dict[str, Any]:
    """A reply: an integer id and exactly one of `response` or `exception` (a well-formed transfer); nothing else."""
    message = decode(line)
    keys = set(message) - {"id"}
    if keys not in ({"response"}, {"exception"}):
        raise ProtocolError(f"a reply must carry exactly one of response/exception, got keys {sorted(message)}")
    if "exception" in message:
        try:
            _ExceptionTransfer.model_validate(message["exception"])
        except ValueError:
            raise ProtocolError("malformed exception transfer") from None
    return message


def exception_to_wire(exc: BaseException) -> dict[str, Any]:
    transfer = _ExceptionTransfer(
        message=str(exc),
        class_path=f"{type(exc).__module__}.{type(exc).__qualname__}",
        traceback="".join(traceback.format_exception(exc)),
        extra_info=getattr(exc, "extra_info", {}) or {},
    )
    return transfer.model_dump(mode="json")


def exception_from_wire(data: dict[str, Any]) -> Exception:
    """The host-side exception for a transferred one; unknown classes become a plain SwerexException."""
    transfer = _ExceptionTransfer.model_validate(data)
    module_name, _, class_name = transfer.class_path.rpartition(".")
    cls = getattr(_EXCEPTION_MODULES.get(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        cls = swerex.exceptions.SwerexException
    try:
        exc = cls(transfer.message)
    except TypeError:  # a class whose constructor wants more than a message
        exc = swerex.exceptions.SwerexException(f"{transfer.class_path}: {transfer.message}")
    exc.extra_info = transfer.extra_info  # type: ignore[attr-defined]
    return exc
