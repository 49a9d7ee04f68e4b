"""The host's reading of sandbox replies: the swerex model each protocol method carries, and exceptions re-raised.

The server (inside the sandbox, untrusted) is never believed: a reply must be a well-formed answer of the method
it answers, in swerex's own models, or the host kills the sandbox (`runtime.py`). Only these modules may
name the class of a re-raised exception, so a message from the sandbox never makes the host import anything.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

import pexpect.exceptions
import swerex.exceptions
from pydantic import TypeAdapter
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

from sweagent.environment.sandbox.protocol import METHOD_NAMES, ProtocolError, decode


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
assert tuple(METHODS) == METHOD_NAMES

_EXCEPTION_MODULES = {module.__name__: module for module in (builtins, swerex.exceptions, pexpect.exceptions)}


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
