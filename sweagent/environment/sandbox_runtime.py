"""The host side of the sandbox: a swerex AbstractRuntime that forwards every call to the sandbox server's pipe.

Each call is one JSON line to the server's stdin; a reader thread matches reply lines to calls by id. Waiting uses
thread-safe futures, so the runtime works from any asyncio event loop (SWE-agent-style callers run each call in a
fresh loop) and from several threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import shutil
import subprocess
import threading
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from swerex.exceptions import SwerexException
from swerex.runtime.abstract import (
    AbstractRuntime,
    Action,
    BashAction,
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
)

from sweagent.environment.sandbox import SandboxError, SandboxLayout, kill_sandbox
from sweagent.environment.sandbox_protocol import METHODS, decode, encode, exception_from_wire

# A command's own timeout is enforced inside the sandbox; the host waits this much longer before it declares the
# sandbox wedged and kills it (exit-code retrieval and interrupt retries take a few seconds on top).
_HOST_GRACE_S = 30.0
_CLOSE_TIMEOUT_S = 10.0


class SandboxProcessError(SwerexException, RuntimeError):
    """The sandbox process died or stopped answering; its last stderr lines are in the message."""


class SandboxRuntime(AbstractRuntime):
    def __init__(self, process: subprocess.Popen[bytes], layout: SandboxLayout, *, logger: logging.Logger) -> None:
        self._process = process
        self._layout = layout
        self.logger = logger
        self._ids = itertools.count(1)
        self._pending: dict[int, concurrent.futures.Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()  # guards _pending and _dead; never held while doing pipe I/O
        self._write_lock = threading.Lock()  # one request line at a time on the server's stdin
        self._stderr_tail: deque[str] = deque(maxlen=40)
        self._dead: str | None = None
        self._stderr_reader = threading.Thread(target=self._read_stderr, name="oec-sandbox-stderr", daemon=True)
        self._stderr_reader.start()
        threading.Thread(target=self._read_replies, name="oec-sandbox-replies", daemon=True).start()

    # -- the pipe -------------------------------------------------------------------------------------------------

    def _read_replies(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            try:
                message = decode(line)
            except ValueError as exc:
                self.logger.warning("sandbox: ignoring a malformed reply (%s)", exc)
                continue
            with self._lock:
                future = self._pending.pop(message["id"], None)
            # A caller that gave up (cancelled its wait) gets nothing; set_running... makes that check atomic.
            if future is not None and future.set_running_or_notify_cancel():
                future.set_result(message)
        exit_code = self._process.wait()
        self._stderr_reader.join(timeout=1.0)  # so the error message carries the server's last words
        self._fail_all(f"the sandbox process exited (code {exit_code})")

    def _read_stderr(self) -> None:
        assert self._process.stderr is not None
        for raw in self._process.stderr:
            line = raw.decode("utf-8", errors="backslashreplace").rstrip()
            self._stderr_tail.append(line)
            self.logger.debug("sandbox: %s", line)

    def _fail_all(self, reason: str) -> None:
        with self._lock:
            self._dead = self._dead or reason
            reason, pending, self._pending = self._dead, self._pending, {}
        for future in pending.values():
            if future.set_running_or_notify_cancel():
                future.set_exception(self._error(reason))

    def _error(self, reason: str) -> SandboxProcessError:
        tail = "\n".join(self._stderr_tail)
        return SandboxProcessError(f"{reason}; last sandbox stderr:\n{tail}" if tail else reason)

    def _send(self, method: str, payload: Any) -> concurrent.futures.Future[dict[str, Any]]:
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        with self._lock:
            if self._dead is not None:
                raise self._error(self._dead)
            request_id = next(self._ids)
            self._pending[request_id] = future
        assert self._process.stdin is not None
        try:
            with self._write_lock:
                self._process.stdin.write(encode({"id": request_id, "method": method, "request": payload}))
                self._process.stdin.flush()
        except (BrokenPipeError, ValueError):  # ValueError: stdin already closed by close()
            with self._lock:
                self._pending.pop(request_id, None)
            raise self._error("the sandbox process is gone") from None
        return future

    async def _call(self, method: str, request: BaseModel | None, *, deadline: float | None) -> Any:
        """Send one call and wait for its reply; past `deadline` seconds the wedged sandbox is killed."""
        spec = METHODS[method]
        payload = None if spec.request is None else spec.request.dump_python(request, mode="json")
        future = self._send(method, payload)
        try:
            message = await asyncio.wait_for(asyncio.wrap_future(future), deadline)
        except TimeoutError:
            self.kill(f"no answer to {method} within {deadline:.0f} s")
            raise self._error(f"the sandbox did not answer {method} within {deadline:.0f} s and was killed") from None
        if "exception" in message:
            raise exception_from_wire(message["exception"])
        return spec.response.validate_python(message["response"])

    def kill(self, reason: str) -> None:
        """Kill the sandbox (all processes in it); pending and later calls fail with SandboxProcessError."""
        self.logger.warning("killing the sandbox: %s", reason)
        with self._lock:
            self._dead = self._dead or reason
        kill_sandbox(self._process)

    # -- AbstractRuntime ------------------------------------------------------------------------------------------

    async def is_alive(self, *, timeout: float | None = None) -> IsAliveResponse:
        """Answered by the server at once even while a command runs; False if the process is gone or silent."""
        if self._dead is not None or self._process.poll() is not None:
            return IsAliveResponse(is_alive=False, message=str(self._error(self._dead or "the sandbox exited")))
        try:
            future = self._send("is_alive", None)
            message = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except (TimeoutError, SandboxProcessError) as exc:
            return IsAliveResponse(is_alive=False, message=f"sandbox did not answer: {exc}")
        return METHODS["is_alive"].response.validate_python(message["response"])

    async def create_session(self, request: CreateSessionRequest) -> CreateSessionResponse:
        return await self._call("create_session", request, deadline=request.startup_timeout + _HOST_GRACE_S)

    async def run_in_session(self, action: Action) -> Observation:
        timeout = action.timeout if isinstance(action, BashAction) else action.timeout * action.n_retry
        deadline = None if timeout is None else timeout + _HOST_GRACE_S
        return await self._call("run_in_session", action, deadline=deadline)

    async def close_session(self, request: CloseSessionRequest) -> CloseSessionResponse:
        return await self._call("close_session", request, deadline=_CLOSE_TIMEOUT_S)

    async def execute(self, command: Command) -> CommandResponse:
        deadline = None if command.timeout is None else command.timeout + _HOST_GRACE_S
        return await self._call("execute", command, deadline=deadline)

    async def read_file(self, request: ReadFileRequest) -> ReadFileResponse:
        """Read inside the sandbox, so the content is exactly what commands see."""
        return await self._call("read_file", request, deadline=None)

    async def write_file(self, request: WriteFileRequest) -> WriteFileResponse:
        """Write inside the sandbox, so only the writable mounts can be written."""
        return await self._call("write_file", request, deadline=None)

    async def upload(self, request: UploadRequest) -> UploadResponse:
        """Copy a host file or directory to `target_path` in the sandbox (directories merge into existing ones).

        The host stages the source in a folder the sandbox sees read-only (so no command can redirect the host's
        writes); the sandbox server copies it from there, so the target obeys the same rules as any command.
        """
        source = Path(request.source_path)
        if not source.exists():
            raise FileNotFoundError(f"upload: source '{source}' does not exist on the host")
        if self._layout.staging is None:
            raise SandboxError("upload: this sandbox was started without an upload staging folder")
        staging = self._layout.staging / uuid.uuid4().hex
        staging.mkdir()
        try:
            staged = staging / (source.name or "upload")
            if source.is_dir():
                shutil.copytree(source, staged, symlinks=True)
            else:
                shutil.copy2(source, staged)
            inner = UploadRequest(source_path=self._layout.staged_path(staged), target_path=request.target_path)
            return await self._call("upload", inner, deadline=None)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    async def close(self) -> CloseResponse:
        """Close every session, then let the server exit; a server that does not exit in time is killed."""
        response = CloseResponse()
        if self._dead is None:
            try:
                response = await self._call("close", None, deadline=_CLOSE_TIMEOUT_S)
            except Exception as exc:  # closing must always end the process, whatever the sessions did
                self.logger.warning("sandbox: closing the sessions failed: %s", exc)
        with self._lock:
            self._dead = self._dead or "the sandbox was closed"
        assert self._process.stdin is not None
        with self._write_lock:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=_CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            kill_sandbox(self._process)
        return response
