"""The host side of the sandbox: a swerex AbstractRuntime that forwards every call to the sandbox server's pipes.

Each call is one JSON line on the request pipe; a reader thread matches reply lines to calls by id. The pipes are
private to the server (see server.py), and the host still trusts nothing it reads: a reply line longer than
MAX_REPLY_BYTES, one that is not well-formed, or one that answers no pending request kills the sandbox, so a forged
or runaway reply ends that rollout with an environment error and never reaches a trajectory or exhausts memory.
While a call runs, a watchdog measures what the sandbox wrote and kills it past its disk limit. The same runtime
serves a container (`container/deployment.py`): it only needs a process to kill, the two streams, the server's log
and where uploads are staged. Waiting uses
thread-safe futures, so the runtime works from any asyncio event loop (SWE-agent-style callers run each call in a
fresh loop) and from several threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import shutil
import subprocess
import threading
import uuid
from collections import deque
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from pydantic import BaseModel
from swerex.deployment.abstract import AbstractDeployment
from swerex.deployment.hooks.abstract import CombinedDeploymentHook, DeploymentHook
from swerex.exceptions import DeploymentNotStartedError, SwerexException
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

from sweagent.environment.sandbox.bwrap import DISK_CHECK_INTERVAL_S, SandboxError
from sweagent.environment.sandbox.limits import DiskWatch, SandboxLimitExceeded
from sweagent.environment.sandbox.messages import METHODS, decode_reply, exception_from_wire
from sweagent.environment.sandbox.protocol import MAX_REPLY_BYTES, ProtocolError, encode, read_line
from sweagent.utils.staging import stage

# A command's own timeout is enforced inside the sandbox; the host waits this much longer before it declares the
# sandbox wedged and kills it (exit-code retrieval and interrupt retries take a few seconds on top).
_HOST_GRACE_S = 30.0
_CLOSE_TIMEOUT_S = 10.0
_LOG_LINE_BYTES = 64 * 1024
# Calls after which the disk is measured at once (commands and file writes are how a sandbox adds bytes).
_WRITING_METHODS = {"run_in_session", "execute", "write_file", "upload"}


class SandboxProcessError(SwerexException, RuntimeError):
    """The sandbox process died or stopped answering; its last stderr lines are in the message."""


class ServerProcess(Protocol):
    """The process the server runs in (a bwrap sandbox, a container's client): killing it ends every command."""

    popen: subprocess.Popen[bytes]

    def kill(self) -> None: ...


class UploadStaging(Protocol):
    """Where the host stages uploads (`staging`, None: no uploads) and where the server sees a staged path."""

    staging: Path | None

    def staged_path(self, host_path: Path) -> str: ...


class SandboxRuntime(AbstractRuntime):
    def __init__(
        self,
        sandbox: ServerProcess,
        requests: BinaryIO,
        replies: BinaryIO,
        layout: UploadStaging,
        *,
        log: BinaryIO,
        disk: DiskWatch | None,
        logger: logging.Logger,
    ) -> None:
        """`requests`/`replies`: our ends of the server's private channel; `log` carries its stderr; `disk` (None:
        not yet, see `watch_disk`) measures what it writes."""
        self._sandbox = sandbox
        self._process = sandbox.popen
        self._requests = requests
        self._layout = layout
        self._log = log
        self.logger = logger
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, concurrent.futures.Future[dict[str, Any]]]] = {}
        self._lock = threading.Lock()  # guards _pending and _dead; never held while doing pipe I/O
        self._write_lock = threading.Lock()  # one request line at a time on the request pipe
        self._stderr_tail: deque[str] = deque(maxlen=40)
        self._dead: str | None = None
        self._disk = disk
        self._stopped = threading.Event()
        self._disk_due = threading.Event()
        self._stderr_reader = threading.Thread(target=self._read_log, name="oec-sandbox-log", daemon=True)
        self._stderr_reader.start()
        threading.Thread(target=self._read_replies, args=(replies,), name="oec-sandbox-replies", daemon=True).start()
        threading.Thread(target=self._watch_disk, name="oec-sandbox-disk", daemon=True).start()

    # -- the pipe -------------------------------------------------------------------------------------------------

    def _read_replies(self, replies: BinaryIO) -> None:
        with replies:
            while True:
                try:
                    line = read_line(replies, MAX_REPLY_BYTES)
                    accepted = self._accept(line) if line else None
                except ProtocolError as exc:
                    self.kill(f"the sandbox sent an invalid reply ({exc})")
                    break
                if not line:
                    break
                if accepted is None:
                    continue
                reply, future = accepted
                # A caller that gave up (cancelled its wait) gets nothing; set_running... makes that check atomic.
                if future.set_running_or_notify_cancel():
                    future.set_result(reply)
        exit_code = self._process.wait()
        self._stopped.set()
        self._disk_due.set()  # wakes the watcher, which then sees the stop
        self._stderr_reader.join(timeout=1.0)  # so the error message carries the server's last words
        self._fail_all(f"the sandbox process exited (code {exit_code})")

    def _accept(self, line: bytes) -> tuple[dict[str, Any], concurrent.futures.Future[dict[str, Any]]] | None:
        """The pending call a reply answers; a reply to a call the caller abandoned (killed sandbox) is dropped."""
        message = decode_reply(line)
        with self._lock:
            entry = self._pending.pop(message["id"], None)
            if entry is None and self._dead is None:
                raise ProtocolError(f"reply to id {message['id']}, which is not a pending request")
        if entry is None:
            return None
        method, future = entry
        if "response" in message:
            try:  # the reply must be this method's response model, or the call fails here, not in the caller
                message["response"] = METHODS[method].response.validate_python(message["response"])
            except ValueError as exc:
                with self._lock:  # back to pending, so the kill that follows fails this call too
                    self._pending[message["id"]] = entry
                raise ProtocolError(f"malformed {method} response: {str(exc).splitlines()[0]}") from None
        return message, future

    def _read_log(self) -> None:
        with self._log as stream:
            while raw := read_line(stream, _LOG_LINE_BYTES, truncate=True):
                line = raw.decode("utf-8", errors="backslashreplace").rstrip()
                self._stderr_tail.append(line)
                self.logger.debug("sandbox: %s", line)

    def _watch_disk(self) -> None:
        """Measure what the sandbox wrote after every writing call and, while a call runs, every interval; past its
        limit it is killed. Off the reply path: a command's answer never waits for the measurement."""
        while not self._stopped.is_set():
            due = self._disk_due.wait(DISK_CHECK_INTERVAL_S)
            if self._stopped.is_set():
                break
            if due or self._pending:
                self._disk_due.clear()
                self._check_disk()

    def watch_disk(self, disk: DiskWatch) -> None:
        """Measure from now on what the server writes against `disk`'s baseline (e.g. once a workspace is ready)."""
        self._disk = disk
        self._disk_due.set()

    def _check_disk(self) -> None:
        if self._disk is None:
            return
        try:
            self._disk.check()
        except SandboxLimitExceeded as exc:
            self.kill(str(exc))

    def _fail_all(self, reason: str) -> None:
        with self._lock:
            self._dead = self._dead or reason
            reason, pending, self._pending = self._dead, self._pending, {}
        for _, future in pending.values():
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
            self._pending[request_id] = (method, future)
        try:
            with self._write_lock:
                self._requests.write(encode({"id": request_id, "method": method, "request": payload}))
                self._requests.flush()
        except (BrokenPipeError, ValueError):  # ValueError: the pipe was already closed by close()
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
        if method in _WRITING_METHODS:
            self._disk_due.set()
        if "exception" in message:
            raise exception_from_wire(message["exception"])
        return message["response"]  # validated by the reader

    def kill(self, reason: str) -> None:
        """Kill the sandbox (all processes in it); pending and later calls fail with SandboxProcessError."""
        self.logger.warning("killing the sandbox: %s", reason)
        with self._lock:
            self._dead = self._dead or reason
        self._sandbox.kill()

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
        if "exception" in message:
            return IsAliveResponse(is_alive=False, message=str(exception_from_wire(message["exception"])))
        return message["response"]

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
            stage(source, staged)  # read-only to the sandbox: its server copies from here
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
        self.terminate(wait=_CLOSE_TIMEOUT_S)
        return response

    def terminate(self, wait: float = 0.0) -> None:
        """End the server: close its request pipe, give it `wait` seconds to exit, then kill whatever is left
        (every process in the sandbox; its cgroups go too). Later calls fail with SandboxProcessError."""
        with self._lock:
            self._dead = self._dead or "the sandbox was closed"
        with self._write_lock:
            self._requests.close()
        if wait > 0:
            try:
                self._process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass
        self._sandbox.kill()


class ServerDeployment(AbstractDeployment):
    """A deployment whose runtime is a SandboxRuntime (the sandbox, a container): hooks, liveness and stopping are
    the same for each; subclasses start the server and set `_runtime`, and put what stop removes in `_scratch`."""

    kind = "server"
    """What the deployment runs in, for messages."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._runtime: SandboxRuntime | None = None
        self._scratch = contextlib.ExitStack()
        self.logger = logger or logging.getLogger(type(self).__module__)
        self._hooks = CombinedDeploymentHook()

    def add_hook(self, hook: DeploymentHook) -> None:
        self._hooks.add_hook(hook)

    async def stop(self) -> None:
        """Stop every process of the deployment, then remove its scratch folders (a sandbox's workspace stays)."""
        if self._runtime is not None:
            await self._runtime.close()
            self._runtime = None
        self._scratch.close()

    async def is_alive(self, *, timeout: float | None = None) -> IsAliveResponse:
        if self._runtime is None:
            return IsAliveResponse(is_alive=False, message=f"the {self.kind} deployment is not started")
        return await self._runtime.is_alive(timeout=timeout)

    @property
    def runtime(self) -> SandboxRuntime:
        if self._runtime is None:
            raise DeploymentNotStartedError()
        return self._runtime
