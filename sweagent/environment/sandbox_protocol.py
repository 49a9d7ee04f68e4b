"""The wire format between the host and the sandbox server: one JSON object per line, swerex's own models inside.

Host to sandbox: `{"id": n, "method": "<AbstractRuntime method>", "request": <swerex request model>}`.
Sandbox to host: `{"id": n, "response": <swerex response model>}` or `{"id": n, "exception": <_ExceptionTransfer>}`.
Exceptions are re-raised on the host as the same swerex (or builtin, or pexpect) exception type, so callers handle
`CommandTimeoutError` and friends exactly as with any other swerex runtime.
"""

from __future__ import annotations

import builtins
import json
import traceback
from dataclasses import dataclass
from typing import Any

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


def encode(message: dict[str, Any]) -> bytes:
    """One message as one line (ASCII JSON, so output with any bytes cannot break the framing)."""
    return json.dumps(message, default=str).encode("ascii") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict) or "id" not in message:
        raise ValueError(f"not a sandbox protocol message: {line[:200]!r}")
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
