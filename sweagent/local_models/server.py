"""Start, reuse, inspect and stop the local model servers (the embedded stand-ins for vLLM and Claude).

Each server runs `sweagent.local_models.serve` in its own session and is recorded in a state file
(`<state_dir>/<name>.json`: URL, PID, model path, port, owner). A server is ours only while its PID still runs that
module with the start time we recorded, so `stop` never signals a process that merely inherited a recycled PID.

A server started for an owner process (`owner_pid`, by default `$OEC_LOCAL_MODELS_OWNER`, which the shell scripts set
to their own PID) stops itself when that process exits, however it ends; `kill -9` of a script included.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError
from rich.console import Console

from sweagent.local_models.catalog import HOST, MODELS, LocalModelError, ModelSpec, cache_root
from sweagent.local_models.locking import exclusive_lock
from sweagent.local_models.trained import TrainedModel, load_trained, trained_names
from sweagent.local_models.weights import check_gguf, ensure_weights
from sweagent.utils.files import write_json_atomic
from sweagent import REPO_ROOT

SERVE_MODULE = "sweagent.local_models.serve"
START_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 30.0
CACHE_REUSE_CHUNK = 256
"""Default `cache_reuse`: an agent's history processors rewrite old observations, so a step's prompt shares long
stretches with the cached one after its first change too; llama.cpp shifts chunks of at least this many tokens."""
OWNER_ENV = "OEC_LOCAL_MODELS_OWNER"
"""PID whose exit stops the servers started while it is set (scripts/local_models.sh exports the script's own)."""
BUSY_GRACE_S = 30.0
"""How long a live server of ours may miss health checks (a starved CPU) before `ensure_server` replaces it."""
_MODULE_DIR = Path(__file__).resolve().parent
_REPO_ROOT = REPO_ROOT
# Health checks go straight to loopback, whatever proxy the environment configures.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerInfo(BaseModel):
    """A running local server, as recorded in its state file."""

    name: str
    model_alias: str
    """Model id to send: `openai/<model_alias>` in litellm, `model=<model_alias>` in the openai client."""
    url: str
    port: int
    pid: int
    pid_start_ticks: int
    """Kernel start time of `pid`; tells our server apart from a later process that reuses the PID."""
    model_path: str
    ctx: int
    """Context window of each slot, in tokens."""
    threads: int
    parallel: int = 1
    """Slots: requests the server works on at once (batched together), e.g. one per rollout worker."""
    cache_reuse: int = CACHE_REUSE_CHUNK
    """Smallest chunk of a cached prompt llama.cpp shifts into place after an earlier change (0: prefix reuse only)."""
    log_path: str
    owner_pid: int | None = None
    """The server stops itself when this process exits; None: it runs until stopped."""
    lora_path: str | None = None
    """A GGUF LoRA adapter llama.cpp applies on top of `model_path` (a trained student), or None."""
    started_by_us: bool = False
    """True when this call started the server (not stored: every later reader finds it already running)."""

    @property
    def api_base(self) -> str:
        """OpenAI-compatible base URL for litellm's `api_base` or the openai client's `base_url`."""
        return f"{self.url}/v1"

    @property
    def litellm_model(self) -> str:
        return f"openai/{self.model_alias}"


class ServerStatus(BaseModel):
    name: str
    state: Literal["running", "unresponsive", "dead", "stopped"]
    """running: ours and healthy; unresponsive: ours but not answering /health; dead: recorded but gone;
    stopped: nothing recorded."""
    info: ServerInfo | None = None


def default_threads() -> int:
    """All cores this process may use: llama.cpp on CPU scales with cores, and the machine is ours to use."""
    return len(os.sched_getaffinity(0))


def ensure_server(
    name: str,
    *,
    port: int | None = None,
    model_path: str | Path | None = None,
    ctx: int | None = None,
    threads: int | None = None,
    parallel: int | None = None,
    cache_reuse: int | None = None,
    state_dir: Path | None = None,
    timeout: float = START_TIMEOUT_S,
    owner_pid: int | None = None,
) -> ServerInfo:
    """The running server for `name`, starting it (and fetching its weights) when none is healthy.

    Options left as None accept whatever a running server uses; an explicit one that differs is an error, so a
    caller never silently talks to a model other than the one it asked for. A server started here stops when
    `owner_pid` (default: `$OEC_LOCAL_MODELS_OWNER`, if set) exits; a running one is reused whoever owns it.
    """
    spec, trained = _spec_or_trained(name)
    lora_path = trained.lora_path if trained is not None else None
    if trained is not None and model_path is None:
        model_path = trained.model_path
    for option, value in (("ctx", ctx), ("threads", threads), ("parallel", parallel)):
        if value is not None and value < 1:
            raise LocalModelError(f"--{option} {value}: expected a positive number")
    state_dir = _state_dir(state_dir)
    with exclusive_lock(state_dir / f".{name}.lock"):
        current = _read_state(state_dir, name)
        if current is not None:
            if _is_healthy(current, grace=BUSY_GRACE_S):
                _check_compatible(
                    current, port=port, model_path=model_path, ctx=ctx, threads=threads, parallel=parallel,
                    cache_reuse=cache_reuse, lora_path=lora_path,
                )
                return current
            _terminate(current)
            _state_path(state_dir, name).unlink(missing_ok=True)
        resolved = check_gguf(Path(model_path)) if model_path is not None else ensure_weights(spec)
        info = _spawn(
            name,
            alias=spec.name,
            model_path=resolved,
            lora_path=check_gguf(Path(lora_path)) if lora_path is not None else None,
            port=_choose_port(port, spec.default_port),
            ctx=ctx if ctx is not None else spec.default_ctx,
            threads=threads if threads is not None else default_threads(),
            parallel=parallel or 1,
            cache_reuse=cache_reuse if cache_reuse is not None else CACHE_REUSE_CHUNK,
            chat_template=_MODULE_DIR / spec.chat_template if spec.chat_template else None,
            state_dir=state_dir,
            timeout=timeout,
            owner_pid=owner_pid if owner_pid is not None else _owner_from_env(),
        )
        write_json_atomic(_state_path(state_dir, name), info.model_dump(exclude={"started_by_us"}))
        return info.model_copy(update={"started_by_us": True})


def stop_server(name: str, *, state_dir: Path | None = None, owner_pid: int | None = None) -> bool:
    """End the server recorded for `name` if it is still ours (and, given `owner_pid`, was started for that process);
    True when a process was stopped."""
    _check_known(name)
    state_dir = _state_dir(state_dir)

    def wanted(info: ServerInfo | None) -> bool:
        return info is not None and (owner_pid is None or info.owner_pid == owner_pid)

    # Checked before taking the lock too: a script's exit must not wait for somebody else's server to finish starting.
    if not wanted(_read_state(state_dir, name)):
        return False
    with exclusive_lock(state_dir / f".{name}.lock"):
        current = _read_state(state_dir, name)
        if not wanted(current):
            return False
        stopped = _terminate(current)
        _state_path(state_dir, name).unlink(missing_ok=True)
        return stopped


def server_status(name: str, *, state_dir: Path | None = None) -> ServerStatus:
    _check_known(name)
    current = _read_state(_state_dir(state_dir), name)
    if current is None:
        return ServerStatus(name=name, state="stopped")
    if not _is_ours(current):
        return ServerStatus(name=name, state="dead", info=current)
    return ServerStatus(name=name, state="running" if _health_ok(current.url) else "unresponsive", info=current)


def _spec_or_trained(name: str) -> tuple[ModelSpec, TrainedModel | None]:
    """A pinned model's spec, or a trained student's record with the spec of the pinned student for the defaults (port
    aside: a trained one takes any free port, so it can run next to the base student)."""
    if name in MODELS:
        return MODELS[name], None
    _check_known(name)
    return dataclasses.replace(MODELS["student"], name=name, default_port=0), load_trained(name)


def _check_known(name: str) -> None:
    """Stopping and status need only the name: a trained student whose files are gone can still be stopped."""
    if name not in MODELS and name not in trained_names():
        registered = ", ".join(trained_names()) or "none registered"
        raise LocalModelError(f"unknown local model '{name}': expected {', '.join(MODELS)} or a trained model ({registered})")


def _owner_from_env() -> int | None:
    value = os.environ.get(OWNER_ENV, "")
    if not value:
        return None
    if not value.isdigit():
        raise LocalModelError(f"${OWNER_ENV}={value!r}: expected a process id")
    return int(value)


def _state_dir(state_dir: Path | None) -> Path:
    return Path(state_dir) if state_dir is not None else cache_root() / "servers"


def _state_path(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.json"


def _read_state(state_dir: Path, name: str) -> ServerInfo | None:
    path = _state_path(state_dir, name)
    if not path.exists():
        return None
    try:
        return ServerInfo.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise LocalModelError(f"{path}: unreadable server state ({exc}); delete the file and start again") from None


def _check_compatible(current: ServerInfo, **wanted: object) -> None:
    for key in ("model_path", "lora_path"):
        if wanted.get(key) is not None:
            wanted[key] = str(Path(wanted[key]).expanduser().resolve())
    for key, value in wanted.items():
        if value is not None and value != getattr(current, key):
            raise LocalModelError(
                f"the {current.name} server already runs at {current.url} with {key}={getattr(current, key)}, "
                f"not {value}; stop it first (sweagent serve-local stop {current.name})"
            )


def _pid_start_ticks(pid: int) -> int | None:
    """Start time of a live (non-zombie) process from /proc, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return None if fields[0] == "Z" else int(fields[19])


def _is_ours(info: ServerInfo) -> bool:
    # The command line is final only once exec has completed; a server is recorded only after it reported ready.
    if _pid_start_ticks(info.pid) != info.pid_start_ticks:
        return False
    try:
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return SERVE_MODULE.encode() in cmdline and info.name.encode() in cmdline


def _is_healthy(info: ServerInfo, grace: float) -> bool:
    """Ours and answering /health, allowing a live server `grace` seconds to answer before giving up on it."""
    deadline = time.monotonic() + grace
    while _is_ours(info):
        if _health_ok(info.url):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(1.0)
    return False


def _health_ok(url: str) -> bool:
    try:
        with _DIRECT.open(f"{url}/health", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _terminate(info: ServerInfo) -> bool:
    """SIGTERM our server, SIGKILL it if it lingers; never touch a PID that is no longer our server."""
    if not _is_ours(info):
        return False
    os.kill(info.pid, signal.SIGTERM)
    if not _wait_gone(info.pid, STOP_TIMEOUT_S) and _is_ours(info):
        os.kill(info.pid, signal.SIGKILL)
        _wait_gone(info.pid, STOP_TIMEOUT_S)
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:  # reap it when it is our own child, so it does not linger as a zombie
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if _pid_start_ticks(pid) is None:
            return True
        time.sleep(0.1)
    return False


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Like llama.cpp's own listener: connections of a just-stopped server in TIME_WAIT must not block the port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _choose_port(requested: int | None, default: int) -> int:
    """The user's port or a clear error; otherwise the model's usual port, or any free one (0) if it is taken."""
    if requested is not None:
        if not 0 < requested < 65536:
            raise LocalModelError(f"--port {requested}: expected a TCP port between 1 and 65535")
        if not _port_free(requested):
            raise LocalModelError(f"--port {requested}: {HOST}:{requested} is already in use; choose another port")
        return requested
    return default if _port_free(default) else 0


def _spawn(
    name: str, *, alias: str, model_path: Path, lora_path: Path | None, port: int, ctx: int, threads: int, parallel: int,
    cache_reuse: int, chat_template: Path | None, state_dir: Path, timeout: float, owner_pid: int | None,
) -> ServerInfo:
    """Start the server process in its own session and wait until it answers /health."""
    owner_args: list[str] = []
    if owner_pid is not None:
        owner_ticks = _pid_start_ticks(owner_pid)
        if owner_ticks is None:
            raise LocalModelError(f"owner pid {owner_pid} (${OWNER_ENV}) is not running")
        owner_args = ["--owner_pid", str(owner_pid), "--owner_start_ticks", str(owner_ticks)]
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / f"{name}.log"
    ready_file = state_dir / f"{name}.ready.json"
    ready_file.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", SERVE_MODULE, "--name", name, "--alias", alias, "--model_path", str(model_path),
        "--port", str(port), "--ctx", str(ctx), "--threads", str(threads), "--parallel", str(parallel),
        "--cache_reuse", str(cache_reuse), "--ready_file", str(ready_file), *owner_args,
        *(["--lora", str(lora_path)] if lora_path is not None else []),
        *(["--chat_template", str(chat_template)] if chat_template is not None else []),
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(_REPO_ROOT), os.environ.get("PYTHONPATH")])))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd="/", env=env,
            start_new_session=True,
        )
    try:
        with Console(stderr=True).status(f"starting the {name} server ({model_path.name}, {parallel} x ctx {ctx})"):
            url = _wait_ready(process, ready_file, log_path, name, timeout)
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        ready_file.unlink(missing_ok=True)
    start_ticks = _pid_start_ticks(process.pid)
    if start_ticks is None:
        raise LocalModelError(f"the {name} server (pid {process.pid}) vanished right after starting; see {log_path}")
    return ServerInfo(
        name=name, model_alias=alias, url=url, port=int(url.rsplit(":", 1)[1]), pid=process.pid,
        pid_start_ticks=start_ticks, model_path=str(model_path), ctx=ctx, threads=threads, parallel=parallel,
        cache_reuse=cache_reuse, log_path=str(log_path),
        owner_pid=owner_pid, lora_path=str(lora_path) if lora_path is not None else None,
    )


def _wait_ready(process: subprocess.Popen, ready_file: Path, log_path: Path, name: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-8:])
            raise LocalModelError(f"the {name} server exited with code {code} while starting ({log_path}):\n{tail}")
        if ready_file.exists():
            url = json.loads(ready_file.read_text(encoding="utf-8"))["url"]
            if _health_ok(url):
                return url
        time.sleep(0.2)
    raise LocalModelError(f"the {name} server did not become healthy within {timeout:.0f}s; see {log_path}")
