"""The bubblewrap sandbox: one layout for every model-written or test command run on a machine without docker.

The host's top-level directories are bound read-only onto the sandbox's own (read-only) root, so host files are
visible but cannot change; only three per-instance host directories are writable: the task workspace (at `/testbed`),
a home at `/root` (tool bundles go to /root/tools) and `/tmp`. The sandbox gets its own network namespace (loopback
only, nothing reaches the host), its own pid namespace (killing it kills every process it started), no capabilities
and a minimal environment, so no host secret (API keys in the environment, credentials under the host's home) is
visible to model-written commands. The session deployment (`sandbox_deployment.py`) and the one-shot
`run_sandboxed` below both build their command line with `bwrap_argv`.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import sweagent

SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH inside the sandbox; callers that add a directory (e.g. a test venv's bin) prepend it to this value."""

BASE_ENV: dict[str, str] = {
    "PATH": SANDBOX_PATH,
    "HOME": "/root",
    "LANG": "C.UTF-8",
    # A dumb terminal keeps colour codes out of what the model reads and out of test logs.
    "TERM": "dumb",
}

SANDBOX_HOME = "/root"
SANDBOX_TMP = "/tmp"
SANDBOX_STAGING = "/run/oec-upload"
"""Where the host's upload staging folder appears, read-only, so a command cannot swap what the host writes."""
# Top-level host entries the sandbox replaces with its own (fresh /dev, /proc; empty /run; per-instance home, tmp).
_REPLACED_TOP_LEVEL = {"dev", "proc", "run", SANDBOX_HOME.strip("/"), SANDBOX_TMP.strip("/")}


class SandboxError(ValueError):
    """Bad sandbox input (missing workspace, bad mount point or bind); the message names what was expected."""


@dataclass(frozen=True)
class ReadOnlyBind:
    """A host path made visible, read-only, inside the sandbox."""

    host: Path
    sandbox: str

    @classmethod
    def parse(cls, spec: str | Path) -> ReadOnlyBind:
        """`HOST` (same path inside) or `HOST:SANDBOX`, like docker's `-v`; the host path must exist."""
        host, _, inside = str(spec).partition(":")
        inside = inside or host
        if not Path(host).exists():
            raise SandboxError(f"ro_binds: host path '{host}' does not exist")
        if not PurePosixPath(inside).is_absolute():
            raise SandboxError(f"ro_binds: sandbox path '{inside}' must be absolute")
        return cls(host=Path(host).resolve(), sandbox=inside)


def validate_mount(mount: str) -> None:
    """The workspace mount point must be a new top-level directory such as /testbed or /repo."""
    path = PurePosixPath(mount)
    if not path.is_absolute() or len(path.parts) != 2 or path.name in _REPLACED_TOP_LEVEL:
        reserved = ", ".join(f"/{name}" for name in sorted(_REPLACED_TOP_LEVEL))
        raise SandboxError(f"mount: expected a new top-level directory like /testbed (not {reserved}), got '{mount}'")


@dataclass(frozen=True)
class SandboxLayout:
    """Which host directories appear where inside the sandbox, and the environment its processes get."""

    workspace: Path
    home: Path
    tmp: Path
    mount: str = "/testbed"
    env: Mapping[str, str] = field(default_factory=dict)
    """Added to BASE_ENV (and overriding it); nothing else from the host environment gets in."""
    ro_binds: Sequence[ReadOnlyBind] = ()
    staging: Path | None = None
    """Host folder the host writes uploads into; the sandbox sees it read-only at SANDBOX_STAGING."""

    @classmethod
    def create(
        cls,
        workspace: str | Path,
        home: str | Path,
        tmp: str | Path,
        *,
        mount: str = "/testbed",
        env: Mapping[str, str] | None = None,
        ro_binds: Sequence[str | Path] = (),
        staging: str | Path | None = None,
    ) -> SandboxLayout:
        """A layout from user-facing values: host paths resolved, `ro_binds` given as `HOST[:SANDBOX]` strings."""
        return cls(
            workspace=Path(workspace).resolve(),
            home=Path(home).resolve(),
            tmp=Path(tmp).resolve(),
            mount=mount,
            env=dict(env or {}),
            ro_binds=tuple(ReadOnlyBind.parse(spec) for spec in ro_binds),
            staging=None if staging is None else Path(staging).resolve(),
        )

    def __post_init__(self) -> None:
        validate_mount(self.mount)
        for name in ("workspace", "home", "tmp"):
            if not getattr(self, name).is_dir():
                raise SandboxError(f"{name}: host directory '{getattr(self, name)}' does not exist")

    def staged_path(self, host_path: Path) -> str:
        """Where a host path inside the staging folder appears inside the sandbox."""
        assert self.staging is not None, "only layouts with a staging folder stage uploads"
        return str(PurePosixPath(SANDBOX_STAGING) / host_path.relative_to(self.staging))


def _python_runtime_paths() -> list[Path]:
    """Host directories the project's Python needs (its venv, the base interpreter, editable sources).

    They are often under the host's home (pyenv, uv), which the sandbox hides; test venvs made from this
    interpreter link to the same base interpreter.
    """
    return [Path(sys.prefix), Path(sys.base_prefix), Path(sweagent.__file__).parents[1]]


def _env_paths(env: Mapping[str, str]) -> list[Path]:
    """Host directories the caller's environment points at: VIRTUAL_ENV and the PATH entries (e.g. a test venv)."""
    entries = [env.get("VIRTUAL_ENV", ""), *env.get("PATH", "").split(":")]
    return [Path(entry) for entry in entries if entry.startswith("/")]


def _host_user_home() -> Path | None:
    """The host user's home when it is not already replaced (e.g. /home/alice): it holds credentials
    (~/.netrc, ~/.aws, ~/.config/...), so the sandbox shows an empty read-only folder there instead."""
    home = Path(os.path.abspath(Path.home()))
    replaced = [Path("/", name) for name in _REPLACED_TOP_LEVEL]
    if home == Path("/") or not home.is_dir() or any(home.is_relative_to(root) for root in replaced):
        return None
    return home


def _hidden_host_paths(layout: SandboxLayout, masked_home: Path | None) -> list[Path]:
    """Existing host paths the sandbox needs but its own mounts (/root, /tmp, the host home) would hide; outermost
    ones only, since a bind brings everything below it."""
    hiding = [Path("/", name) for name in _REPLACED_TOP_LEVEL] + ([masked_home] if masked_home else [])
    candidates = {Path(os.path.abspath(path)) for path in [*_python_runtime_paths(), *_env_paths(layout.env)]}
    hidden = [
        path
        for path in candidates
        if path.exists()
        and any(path.is_relative_to(root) for root in hiding)
        and not path.is_relative_to(layout.mount)
    ]
    return sorted(path for path in hidden if not any(path != other and path.is_relative_to(other) for other in hidden))


def bwrap_argv(layout: SandboxLayout, command: Sequence[str]) -> list[str]:
    """The full bubblewrap command line that runs `command` (cwd = the workspace mount) inside the sandbox."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError("bwrap: bubblewrap is not installed (run scripts/setup.sh or `apt-get install bubblewrap`)")
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--hostname", "sandbox"]
    # A read-only bind of / itself could not hold new mount points such as /testbed, so each top-level entry is
    # bound separately onto the sandbox's own root, which is remounted read-only at the end.
    mount_name = PurePosixPath(layout.mount).name
    for entry in sorted(os.scandir("/"), key=lambda e: e.name):
        if entry.name in _REPLACED_TOP_LEVEL or entry.name == mount_name:
            continue
        if entry.is_symlink():
            argv += ["--symlink", os.readlink(entry.path), entry.path]
        else:
            argv += ["--ro-bind", entry.path, entry.path]
    argv += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/run"]
    masked_home = _host_user_home()
    if masked_home is not None:
        argv += ["--tmpfs", str(masked_home)]
    argv += ["--bind", str(layout.home), SANDBOX_HOME, "--bind", str(layout.tmp), SANDBOX_TMP]
    argv += ["--bind", str(layout.workspace), layout.mount]
    binds = [ReadOnlyBind(path, str(path)) for path in _hidden_host_paths(layout, masked_home)]
    if layout.staging is not None:
        binds.append(ReadOnlyBind(layout.staging, SANDBOX_STAGING))
    for bind in [*binds, *layout.ro_binds]:
        argv += ["--ro-bind", str(bind.host), bind.sandbox]
    read_only = ["/", str(masked_home)] if masked_home is not None else ["/"]
    for path in read_only:
        argv += ["--remount-ro", path]
    argv += ["--clearenv"]
    for key, value in {**BASE_ENV, **layout.env}.items():
        argv += ["--setenv", key, value]
    return [*argv, "--chdir", layout.mount, "--", *command]


# PR_SET_PDEATHSIG (bwrap's --die-with-parent) fires when the *thread* that spawned bwrap exits. Spawning from one
# long-lived thread keeps a sandbox alive as long as this process, whichever worker thread started it.
_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="oec-sandbox-spawner")


def spawn_sandbox(layout: SandboxLayout, command: Sequence[str], **popen_kwargs: object) -> subprocess.Popen[bytes]:
    """Start `command` in the sandbox; bwrap itself gets an empty environment and its own process group."""
    argv = bwrap_argv(layout, command)
    return _SPAWNER.submit(subprocess.Popen, argv, env={}, start_new_session=True, **popen_kwargs).result()


def kill_sandbox(process: subprocess.Popen[bytes]) -> None:
    """Kill bwrap if it still runs; its pid namespace dies with it, taking every process inside (background jobs)."""
    # poll() reaps an exited bwrap; an unreaped live one keeps its pid, so the process group cannot be a stranger's.
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def scratch_dirs(base: str | Path | None = None) -> Iterator[tuple[Path, Path]]:
    """A fresh per-instance (home, tmp) pair of host directories, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="oec-sandbox-", dir=base))
    try:
        (root / "home").mkdir()
        (root / "tmp").mkdir()
        yield root / "home", root / "tmp"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int
    """bash's exit code; 128+N when killed by signal N (a timeout kills with SIGKILL)."""
    output: str
    """stdout and stderr interleaved, as a terminal would show them (the middle is cut if it is very large)."""
    timed_out: bool
    duration_s: float


class _BoundedOutput:
    """Collects a stream but keeps only its head and tail, so a runaway print loop cannot exhaust memory."""

    def __init__(self, limit: int) -> None:
        self._half = limit // 2
        self._head = bytearray()
        self._tail = bytearray()
        self._dropped = 0

    def feed(self, chunk: bytes) -> None:
        room = self._half - len(self._head)
        self._head += chunk[:room]
        self._tail += chunk[room:]
        if len(self._tail) > self._half:
            self._dropped += len(self._tail) - self._half
            del self._tail[: len(self._tail) - self._half]

    def text(self) -> str:
        middle = f"\n[... {self._dropped} bytes of output omitted ...]\n".encode() if self._dropped else b""
        return (bytes(self._head) + middle + bytes(self._tail)).decode("utf-8", errors="backslashreplace")


def run_sandboxed(
    command: str,
    workspace: str | Path,
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    ro_binds: Sequence[str | Path] = (),
    mount: str = "/testbed",
    max_output_bytes: int = 32 * 1024 * 1024,
) -> SandboxResult:
    """Run one bash command in the sandbox with `workspace` writable at `mount` (also the cwd).

    Home and /tmp are fresh and discarded afterwards; only changes to the workspace persist. At `timeout` seconds
    the whole process tree is killed and `timed_out` is set. Host directories named by `env` (VIRTUAL_ENV, PATH
    entries, e.g. a test venv) stay visible even where the sandbox hides the host (/root, /tmp, the user's home);
    `ro_binds` (`HOST` or `HOST:SANDBOX`) adds any other host path, read-only.
    """
    with scratch_dirs() as (home, tmp):
        layout = SandboxLayout.create(workspace, home, tmp, mount=mount, env=env, ro_binds=ro_binds)
        started = time.monotonic()
        process = spawn_sandbox(
            layout, ["bash", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        output = _BoundedOutput(max_output_bytes)
        reader = threading.Thread(target=_drain, args=(process, output), daemon=True)
        reader.start()
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            kill_sandbox(process)
        reader.join()
        duration = time.monotonic() - started
    exit_code = process.returncode if process.returncode >= 0 else 128 - process.returncode
    return SandboxResult(exit_code=exit_code, output=output.text(), timed_out=timed_out, duration_s=duration)


def _drain(process: subprocess.Popen[bytes], output: _BoundedOutput) -> None:
    assert process.stdout is not None
    while chunk := process.stdout.read1(65536):
        output.feed(chunk)
    process.stdout.close()
