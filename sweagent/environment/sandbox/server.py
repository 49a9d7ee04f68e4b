"""The process inside the sandbox: serves swerex's runtime API (our bash sessions, commands, files) over JSON lines
on two private pipes.

Started by the host as `python -I -m sweagent.environment.sandbox.server REQUEST_FD REPLY_FD` inside bwrap. The
pipes are not the sandbox's stdin/stdout: bwrap's own pid 1 (which every process in the sandbox could look at) never
holds them, the server moves them to fresh descriptors that no command inherits, and it makes itself non-dumpable,
so no model-written command can reach them through /proc, ptrace or inheritance. In a container the engine's attach
stream is the only channel, so `--stdio` serves on stdin/stdout instead: the server takes them over the same way and
leaves /dev/null and its log (stderr) at fds 0 and 1 for everything it starts. Nothing listens on a port, so the
sandbox needs no network. Requests run one at a time in order (a bash session is sequential anyway), except
`is_alive`, which is answered at once even while a long command runs.

A rollout's first step waits for this process to answer, so it imports only what a bash session needs (its start
takes about 40 ms on a quiet machine, most of it the interpreter's own); `execute` loads subprocess when first used.
"""

from __future__ import annotations

import ctypes
import os
import queue
import shutil
import signal
import sys
import threading
from typing import Any, BinaryIO

from swerex.exceptions import CommandTimeoutError, NonZeroExitCodeError, SessionDoesNotExistError, SessionExistsError

from sweagent.environment.sandbox.protocol import METHOD_NAMES, decode, encode, exception_to_wire, truncate_output
from sweagent.environment.sandbox.session import SandboxBashSession

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


def _default_signals() -> None:
    """Every ignored signal back to its default, so the commands start as from a terminal: Python ignores SIGPIPE
    and SIGXFSZ at its own start (then `cat f | head` prints 'Broken pipe' into the observation), and children
    inherit an ignored signal through exec. (What the host ignored, spawn_sandbox already reset where it could.)"""
    for number in signal.valid_signals():
        if number not in (signal.SIGKILL, signal.SIGSTOP) and signal.getsignal(number) == signal.SIG_IGN:
            signal.signal(number, signal.SIG_DFL)


class _Runtime:
    """swerex's AbstractRuntime, served here one request at a time: our bash sessions, plain subprocesses and file
    operations, with output cut to MAX_OUTPUT_CHARS so a reply always fits the host's limit.

    Requests and replies are the JSON of swerex's models (the host dumps every field of a request, and validates
    every reply), read and written here as plain dicts: no pydantic, so the server is up in a fraction of the time.
    """

    def __init__(self) -> None:
        self.sessions: dict[str, SandboxBashSession] = {}

    def is_alive(self) -> dict[str, Any]:
        return {"is_alive": True, "message": ""}

    def create_session(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request.get("session", "default")
        if name in self.sessions:
            raise SessionExistsError(f"session {name} already exists")
        if request.get("session_type", "bash") != "bash":
            raise ValueError(f"unknown session type: {request!r}")
        session = SandboxBashSession(list(request.get("startup_source") or []), request.get("startup_timeout", 1.0))
        self.sessions[name] = session
        return {"output": session.start(), "session_type": "bash"}

    def _session(self, name: str) -> SandboxBashSession:
        if name not in self.sessions:
            raise SessionDoesNotExistError(f"session {name!r} does not exist")
        return self.sessions[name]

    def run_in_session(self, action: dict[str, Any]) -> dict[str, Any]:
        session = self._session(action.get("session", "default"))
        if action.get("action_type") == "bash_interrupt":
            if action.get("expect"):
                raise ValueError("an interrupt that waits for expect strings (an interactive program) is not supported by the sandbox's bash session")
            observation = session.interrupt(timeout=action.get("timeout", 0.2), n_retry=action.get("n_retry", 3))
        elif action.get("is_interactive_command") or action.get("is_interactive_quit"):
            raise ValueError("interactive commands are not supported by the sandbox's bash session")
        else:
            observation = session.run(action["command"], timeout=action.get("timeout"), check=action.get("check", "raise"),
                                      error_msg=action.get("error_msg", ""), expect=action.get("expect") or [])
        observation["output"] = truncate_output(observation["output"])
        return observation

    def close_session(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request.get("session", "default")
        self._session(name).close()
        del self.sessions[name]
        return {"session_type": "bash"}

    def execute(self, command: dict[str, Any]) -> dict[str, Any]:
        """One command outside any session."""
        import subprocess

        timeout = command.get("timeout")
        try:
            result = subprocess.run(command["command"], shell=command.get("shell", False), timeout=timeout,
                                    env=command.get("env"), cwd=command.get("cwd"), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT if command.get("merge_output_streams") else subprocess.PIPE)
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeoutError(f"Timeout ({timeout}s) exceeded while running command") from exc
        stdout = truncate_output(result.stdout.decode(errors="backslashreplace"))
        stderr = truncate_output((result.stderr or b"").decode(errors="backslashreplace"))
        if command.get("check") and result.returncode != 0:
            message = (f"Command {command['command']!r} failed with exit code {result.returncode}. "
                       f"Stdout:\n{stdout!r}\nStderr:\n{stderr!r}")
            raise NonZeroExitCodeError(f"{command['error_msg']}: {message}" if command.get("error_msg") else message)
        return {"stdout": stdout, "stderr": stderr, "exit_code": result.returncode}

    def read_file(self, request: dict[str, Any]) -> dict[str, Any]:
        with open(request["path"], encoding=request.get("encoding"), errors=request.get("errors")) as file:
            return {"content": file.read()}

    def write_file(self, request: dict[str, Any]) -> dict[str, Any]:
        path = request["path"]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as file:
            file.write(request["content"])
        return {}

    def upload(self, request: dict[str, Any]) -> dict[str, Any]:
        """Copy the host-staged file or directory to its target, creating parents; directories merge into an
        existing target (as with swerex's server) and file modes survive, so tool scripts stay executable."""
        source, target = request["source_path"], request["target_path"]
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        if os.path.isdir(source):
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        return {}

    def close(self) -> dict[str, Any]:
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()
        return {}


def _dispatch(runtime: _Runtime, method_name: str, payload: Any) -> dict[str, Any]:
    if method_name not in METHOD_NAMES:
        raise ValueError(f"unknown sandbox method {method_name!r}")
    method = getattr(runtime, method_name)
    return method() if method_name in ("is_alive", "close") else method(payload if isinstance(payload, dict) else {})


def _read_requests(requests: BinaryIO, work: queue.Queue[dict[str, Any] | None], replies: _Replies) -> None:
    for line in requests:
        try:
            message = decode(line)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            print(f"sandbox_server: dropping bad request: {exc}", file=sys.stderr)
            continue
        if message.get("method") == "is_alive":
            replies.send({"id": message["id"], "response": {"is_alive": True, "message": ""}})
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
            reply = {"id": message["id"], "response": _dispatch(runtime, method_name, message.get("request"))}
        except Exception as exc:  # every failure goes back to the host, which re-raises it
            reply = {"id": message["id"], "exception": exception_to_wire(exc)}
        replies.send(reply)
    runtime.close()


def main() -> int:
    _forbid_fd_access()
    _default_signals()
    requests, replies = _claim_stdio() if sys.argv[1:] == ["--stdio"] else _claim_pipes(int(sys.argv[1]), int(sys.argv[2]))
    serve(requests, _Replies(replies))
    return 0


if __name__ == "__main__":
    sys.exit(main())
