"""The process inside the sandbox: serves swerex's runtime API (our bash sessions, commands, files) over JSON lines
on two private pipes.

Started by the host as `python -I -m sweagent.environment.sandbox_server REQUEST_FD REPLY_FD` inside bwrap. The
pipes are not the sandbox's stdin/stdout: bwrap's own pid 1 (which every process in the sandbox could look at) never
holds them, the server moves them to fresh descriptors that no command inherits, and it makes itself non-dumpable,
so no model-written command can reach them through /proc, ptrace or inheritance. In a container the engine's attach
stream is the only channel, so `--stdio` serves on stdin/stdout instead: the server takes them over the same way and
leaves /dev/null and its log (stderr) at fds 0 and 1 for everything it starts. Nothing listens on a port, so the
sandbox needs no network. Requests run one at a time in order (a bash session is sequential anyway), except
`is_alive`, which is answered at once even while a long command runs.
"""

from __future__ import annotations

import ctypes
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

from swerex.exceptions import CommandTimeoutError, NonZeroExitCodeError, SessionDoesNotExistError, SessionExistsError
from swerex.runtime.abstract import (
    Action,
    CloseResponse,
    CloseSessionRequest,
    CloseSessionResponse,
    Command,
    CommandResponse,
    CreateBashSessionRequest,
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

from sweagent.environment.sandbox_protocol import METHODS, decode, encode, exception_to_wire, truncate_output
from sweagent.environment.sandbox_session import SandboxBashSession

_PR_SET_DUMPABLE = 4


class _Replies:
    """Serialises replies from the reading thread (is_alive) and the working thread onto the private stdout."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._stream.write(encode(message))
            self._stream.flush()


def _claim_pipes(request_fd: int, reply_fd: int) -> tuple[BinaryIO, BinaryIO]:
    """Private, non-inheritable copies of the protocol pipes; the inherited descriptors are closed.

    Commands started by the runtime inherit nothing but fds 0-2 (/dev/null and the log pipe): they can neither read
    requests nor write into replies.
    """
    requests = os.fdopen(os.dup(request_fd), "rb")
    replies = os.fdopen(os.dup(reply_fd), "wb")
    os.close(request_fd)
    os.close(reply_fd)
    sys.stdout = sys.stderr
    return requests, replies


def _claim_stdio() -> tuple[BinaryIO, BinaryIO]:
    """The protocol on stdin/stdout, moved to private descriptors; fd 0 becomes /dev/null and fd 1 the log."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    request_fd, reply_fd = os.dup(0), os.dup(1)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    return _claim_pipes(request_fd, reply_fd)


def _forbid_fd_access() -> None:
    """A non-dumpable process's /proc/<pid>/fd cannot be opened by the sandboxed commands (they have no caps)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        print(f"sandbox_server: prctl(PR_SET_DUMPABLE) failed: errno {ctypes.get_errno()}", file=sys.stderr)


class _Runtime:
    """swerex's AbstractRuntime, served here (synchronously, one request at a time): our bash sessions, plain
    subprocesses and file operations, with output cut to MAX_OUTPUT_CHARS so a reply always fits the host's limit."""

    def __init__(self) -> None:
        self.sessions: dict[str, SandboxBashSession] = {}

    def is_alive(self) -> IsAliveResponse:
        return IsAliveResponse(is_alive=True)

    def create_session(self, request: CreateSessionRequest) -> CreateSessionResponse:
        if request.session in self.sessions:
            raise SessionExistsError(f"session {request.session} already exists")
        if not isinstance(request, CreateBashSessionRequest):
            raise ValueError(f"unknown session type: {request!r}")
        session = SandboxBashSession(request)
        self.sessions[request.session] = session
        return session.start()

    def _session(self, name: str) -> SandboxBashSession:
        if name not in self.sessions:
            raise SessionDoesNotExistError(f"session {name!r} does not exist")
        return self.sessions[name]

    def run_in_session(self, action: Action) -> Observation:
        observation = self._session(action.session).run(action)
        observation.output = truncate_output(observation.output)
        return observation

    def close_session(self, request: CloseSessionRequest) -> CloseSessionResponse:
        response = self._session(request.session).close()
        del self.sessions[request.session]
        return response

    def execute(self, command: Command) -> CommandResponse:
        """One command outside any session."""
        try:
            result = subprocess.run(command.command, shell=command.shell, timeout=command.timeout, env=command.env,
                                    cwd=command.cwd, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT if command.merge_output_streams else subprocess.PIPE)
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeoutError(f"Timeout ({command.timeout}s) exceeded while running command") from exc
        response = CommandResponse(stdout=truncate_output(result.stdout.decode(errors="backslashreplace")),
                                   stderr=truncate_output((result.stderr or b"").decode(errors="backslashreplace")),
                                   exit_code=result.returncode)
        if command.check and result.returncode != 0:
            message = (f"Command {command.command!r} failed with exit code {result.returncode}. "
                       f"Stdout:\n{response.stdout!r}\nStderr:\n{response.stderr!r}")
            raise NonZeroExitCodeError(f"{command.error_msg}: {message}" if command.error_msg else message)
        return response

    def read_file(self, request: ReadFileRequest) -> ReadFileResponse:
        return ReadFileResponse(content=Path(request.path).read_text(encoding=request.encoding, errors=request.errors))

    def write_file(self, request: WriteFileRequest) -> WriteFileResponse:
        Path(request.path).parent.mkdir(parents=True, exist_ok=True)
        Path(request.path).write_text(request.content)
        return WriteFileResponse()

    def upload(self, request: UploadRequest) -> UploadResponse:
        """Copy the host-staged file or directory to its target, creating parents; directories merge into an
        existing target (as with swerex's server) and file modes survive, so tool scripts stay executable."""
        source, target = Path(request.source_path), Path(request.target_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        return UploadResponse()

    def close(self) -> CloseResponse:
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()
        return CloseResponse()


def _dispatch(runtime: _Runtime, method_name: str, payload: Any) -> dict[str, Any]:
    method = METHODS[method_name]
    args = [] if method.request is None else [method.request.validate_python(payload)]
    response = getattr(runtime, method_name)(*args)
    return method.response.dump_python(response, mode="json")


def _read_requests(requests: BinaryIO, work: queue.Queue[dict[str, Any] | None], replies: _Replies) -> None:
    for line in requests:
        try:
            message = decode(line)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            print(f"sandbox_server: dropping bad request: {exc}", file=sys.stderr)
            continue
        if message.get("method") == "is_alive":
            replies.send({"id": message["id"], "response": IsAliveResponse(is_alive=True).model_dump(mode="json")})
        else:
            work.put(message)
    work.put(None)


def serve(requests: BinaryIO, replies: _Replies) -> None:
    """Answer requests until the host closes our stdin; then close every bash session."""
    runtime = _Runtime()
    work: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(target=_read_requests, args=(requests, work, replies), daemon=True).start()
    while (message := work.get()) is not None:
        method_name = message.get("method")
        try:
            if method_name not in METHODS:
                raise ValueError(f"unknown sandbox method {method_name!r}")
            reply = {"id": message["id"], "response": _dispatch(runtime, method_name, message.get("request"))}
        except Exception as exc:  # every failure goes back to the host, which re-raises it
            reply = {"id": message["id"], "exception": exception_to_wire(exc)}
        replies.send(reply)
    runtime.close()


def main() -> int:
    _forbid_fd_access()
    requests, replies = _claim_stdio() if sys.argv[1:] == ["--stdio"] else _claim_pipes(int(sys.argv[1]), int(sys.argv[2]))
    serve(requests, _Replies(replies))
    return 0


if __name__ == "__main__":
    sys.exit(main())
