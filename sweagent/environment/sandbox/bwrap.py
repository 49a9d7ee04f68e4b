"""The bubblewrap sandbox: one layout for every model-written or test command run on a machine without docker.

Only what a task needs is visible: the system directories (/usr, /etc, the /lib and /bin links), read-only; the
Python runtime that serves the sandbox (its venv, base interpreter and the `sweagent` package, nothing else of the
checkout); the test venv and other paths the caller names, read-only; and three per-instance host directories,
writable: the task workspace (at `/testbed`), a home at `/root` (tool bundles go to /root/tools) and `/tmp`.
Nothing else of the host shows up: no home directories, no task set, no output directory, no other workspace.
When OEC runs as root, every command runs as an unprivileged host user (`SANDBOX_UID`, 65534 by default), so
root-only files such as /etc/shadow stay unreadable even where their directory is visible; otherwise commands run
as the caller inside a user namespace. The sandbox has its own network namespace (loopback only), its own pid
namespace (killing it kills every process it started), no capabilities, a minimal environment (no host secret) and
the resource limits of `limits.py`. The session deployment (`deployment.py`) and the one-shot
`run_sandboxed` below both build their command line with `sandbox_argv`.
"""

from __future__ import annotations

import concurrent.futures
import functools
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
from sweagent.environment.sandbox.limits import (
    Cgroups,
    DiskWatch,
    SandboxLimitExceeded,
    SandboxLimits,
    limits_prefix,
    make_cgroups,
)
from sweagent.utils.scratch import process_scratch_dir

SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH inside the sandbox; callers that add a directory (e.g. a test venv's bin) prepend it to this value."""

BASE_ENV: dict[str, str] = {
    "PATH": SANDBOX_PATH,
    "HOME": "/root",
    "LANG": "C.UTF-8",
    # A dumb terminal keeps colour codes out of what the model reads and out of test logs.
    "TERM": "dumb",
}

SANDBOX_UID = 65534
"""The host user (nobody) that commands run as when OEC runs as root: it owns nothing outside the sandbox."""
SANDBOX_HOME = "/root"
SANDBOX_TMP = "/tmp"
SANDBOX_STAGING = "/run/oec-upload"
"""Where the host's upload staging folder appears, read-only, so a command cannot swap what the host writes."""
SYSTEM_DIRS = frozenset({"bin", "etc", "lib", "lib32", "lib64", "libx32", "sbin", "usr"})
"""Top-level host entries every sandbox shows read-only: the toolchain, nothing that holds anyone's data."""
# Top-level entries the sandbox makes itself (fresh /dev, /proc and /run; per-instance home and tmp).
_RESERVED_TOP_LEVEL = {"dev", "proc", "run", SANDBOX_HOME.strip("/"), SANDBOX_TMP.strip("/")} | SYSTEM_DIRS
_RUN_TMPFS_BYTES = 16 * 1024 * 1024


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
    if not path.is_absolute() or len(path.parts) != 2 or path.name in _RESERVED_TOP_LEVEL:
        reserved = ", ".join(f"/{name}" for name in sorted(_RESERVED_TOP_LEVEL))
        raise SandboxError(f"mount: expected a new top-level directory like /testbed (not {reserved}), got '{mount}'")


def sandbox_uid(configured: int = SANDBOX_UID) -> int | None:
    """The host uid commands run as: `configured` when we are root, None (the caller itself) otherwise."""
    return configured if os.geteuid() == 0 else None


@dataclass(frozen=True)
class SandboxLayout:
    """Which host directories appear where inside the sandbox, who runs there, and its environment and limits."""

    workspace: Path
    home: Path
    tmp: Path
    mount: str = "/testbed"
    env: Mapping[str, str] = field(default_factory=dict)
    """Added to BASE_ENV (and overriding it); nothing else from the host environment gets in."""
    ro_binds: Sequence[ReadOnlyBind] = ()
    staging: Path | None = None
    """Host folder the host writes uploads into; the sandbox sees it read-only at SANDBOX_STAGING."""
    uid: int | None = None
    """Host uid (and gid) commands run as; None runs them as the caller, in a user namespace."""
    limits: SandboxLimits = field(default_factory=SandboxLimits)

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
        uid: int | None = None,
        limits: SandboxLimits | None = None,
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
            uid=uid,
            limits=limits or SandboxLimits(),
        )

    def __post_init__(self) -> None:
        validate_mount(self.mount)
        for name in ("workspace", "home", "tmp"):
            if not getattr(self, name).is_dir():
                raise SandboxError(f"{name}: host directory '{getattr(self, name)}' does not exist")

    @property
    def writable(self) -> list[Path]:
        """The host directories commands can write to (the disk limit covers them together)."""
        return [self.workspace, self.home, self.tmp]

    def staged_path(self, host_path: Path) -> str:
        """Where a host path inside the staging folder appears inside the sandbox."""
        assert self.staging is not None, "only layouts with a staging folder stage uploads"
        return str(PurePosixPath(SANDBOX_STAGING) / host_path.relative_to(self.staging))


def python_runtime_paths() -> list[Path]:
    """Host paths the sandbox server needs: its venv, the base interpreter and the `sweagent` package alone (the
    rest of the checkout holds the task set and run outputs). Test venvs link to the same base interpreter."""
    return [Path(sys.prefix), Path(sys.base_prefix), Path(sweagent.__file__).parent]


def _env_paths(env: Mapping[str, str]) -> list[Path]:
    """Host directories the caller's environment points at: VIRTUAL_ENV and the PATH entries (e.g. a test venv)."""
    entries = [env.get("VIRTUAL_ENV", ""), *env.get("PATH", "").split(":")]
    return [Path(entry) for entry in entries if entry.startswith("/")]


def _runtime_binds(layout: SandboxLayout) -> list[Path]:
    """Existing host paths outside the system directories that the sandbox needs; outermost ones only, since a
    bind brings everything below it."""
    candidates = {Path(os.path.abspath(path)) for path in [*python_runtime_paths(), *_env_paths(layout.env)]}
    needed = [
        path
        for path in candidates
        if path.exists()
        and len(path.parts) > 1
        and path.parts[1] not in SYSTEM_DIRS
        and not path.is_relative_to(layout.mount)
    ]
    return sorted(path for path in needed if not any(path != other and path.is_relative_to(other) for other in needed))


def _require(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise SandboxError(f"{program}: not installed (run scripts/setup.sh or `apt-get install {package}`)")
    return path


def _parent_dirs(path: str) -> list[str]:
    """bwrap arguments that make a bind's missing parent directories traversable (bwrap's own are 0700, which
    the unprivileged sandbox user could not enter)."""
    parents = list(PurePosixPath(path).parents)[-2::-1]  # outermost first, without "/"
    return [arg for parent in parents if parent.parts[1] not in SYSTEM_DIRS for arg in ("--perms", "0755", "--dir", str(parent))]


def bwrap_argv(layout: SandboxLayout, command: Sequence[str]) -> list[str]:
    """The bubblewrap command line that runs `command` (cwd = the workspace mount) inside the sandbox."""
    bwrap = _require("bwrap", "bubblewrap")
    if layout.uid is None:  # unprivileged: bwrap needs a user namespace to mount anything
        argv = [bwrap, "--unshare-all", "--cap-drop", "ALL"]
    else:  # as root, without a user namespace, so that the unprivileged uid below is a real host uid
        namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        # Only for bwrap's --chdir into the sandbox user's workspace and for setpriv, which loses every capability
        # with the switch to the sandbox user.
        caps = ["CAP_SETUID", "CAP_SETGID", "CAP_DAC_READ_SEARCH"]
        argv = [bwrap, *namespaces, "--cap-drop", "ALL", *(arg for cap in caps for arg in ("--cap-add", cap))]
    argv += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
    # A read-only bind of / itself could not hold new mount points such as /testbed, so each system entry is bound
    # separately onto the sandbox's own root, which is remounted read-only at the end.
    for entry in sorted(os.scandir("/"), key=lambda e: e.name):
        if entry.name not in SYSTEM_DIRS:
            continue
        if entry.is_symlink():
            argv += ["--symlink", os.readlink(entry.path), entry.path]
        else:
            argv += ["--ro-bind", entry.path, entry.path]
    argv += ["--dev", "/dev", "--proc", "/proc", "--size", str(_RUN_TMPFS_BYTES), "--tmpfs", "/run"]
    argv += ["--bind", str(layout.home), SANDBOX_HOME, "--bind", str(layout.tmp), SANDBOX_TMP]
    argv += ["--bind", str(layout.workspace), layout.mount]
    binds = [ReadOnlyBind(path, str(path)) for path in _runtime_binds(layout)]
    if layout.staging is not None:
        binds.append(ReadOnlyBind(layout.staging, SANDBOX_STAGING))
    for bind in [*binds, *layout.ro_binds]:
        argv += [*_parent_dirs(bind.sandbox), "--ro-bind", str(bind.host), bind.sandbox]
    argv += ["--remount-ro", "/", "--clearenv"]
    for key, value in {**BASE_ENV, **layout.env}.items():
        argv += ["--setenv", key, value]
    argv += ["--chdir", layout.mount, "--"]
    if layout.uid is not None:
        setpriv = _require("setpriv", "util-linux")
        argv += [setpriv, f"--reuid={layout.uid}", f"--regid={layout.uid}", "--clear-groups", "--inh-caps=-all", "--"]
    return [*argv, *command]


def sandbox_argv(layout: SandboxLayout, command: Sequence[str], cgroups: Cgroups | None) -> list[str]:
    """The whole command line: limits first (cgroups, rlimits), then bubblewrap, then the sandbox user's command."""
    return [*limits_prefix(layout.limits, cgroups, _require("prlimit", "util-linux")), *bwrap_argv(layout, command)]


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give a whole tree to one owner; symlinks are changed themselves, never followed."""
    os.chown(root, uid, gid, follow_symlinks=False)
    for directory, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            try:
                os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)
            except FileNotFoundError:
                pass


@contextmanager
def sandbox_owns(layout: SandboxLayout) -> Iterator[None]:
    """The writable directories belong to the sandbox user while the sandbox runs, and to us again afterwards."""
    if layout.uid is None:
        yield
        return
    for path in layout.writable:
        chown_tree(path, layout.uid, layout.uid)
    try:
        yield
    finally:
        for path in layout.writable:
            if path.exists():
                chown_tree(path, os.geteuid(), os.getegid())


# PR_SET_PDEATHSIG (bwrap's --die-with-parent) fires when the *thread* that spawned bwrap exits. Spawning from one
# long-lived thread keeps a sandbox alive as long as this process, whichever worker thread started it.
_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="oec-sandbox-spawner")


class SandboxProcess:
    """A running sandbox: the bwrap process (its own process group) and the cgroups that limit it."""

    def __init__(self, popen: subprocess.Popen[bytes], cgroups: Cgroups | None) -> None:
        self.popen = popen
        self._cgroups = cgroups
        self._killing = threading.Lock()

    def kill(self) -> None:
        """Kill bwrap if it still runs; its pid namespace dies with it, taking every process inside (background
        jobs too). Then the cgroups go. Safe from several threads at once (the disk watcher kills a sandbox past its
        limit while the caller may be stopping it)."""
        with self._killing:
            # poll() reaps an exited bwrap; an unreaped live one keeps its pid, so the group cannot be a stranger's.
            if self.popen.poll() is None:
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass  # reaped meanwhile by a poll() outside this lock (a liveness check)
            self.popen.wait()
            if self._cgroups is not None:
                self._cgroups.remove()
                self._cgroups = None


@functools.cache
def _default_signals_prefix() -> tuple[str, ...]:
    """`env --default-signal` (coreutils 8.31+; the sandbox shows the host's /usr), where the system has it: every
    sandbox process then starts with every signal at its default even when OEC ignores SIGINT (started in the
    background by a shell), which a `bash -c` command cannot undo itself; commands and the tests a grader runs see
    Ctrl-C as from a terminal."""
    usable = subprocess.run(["env", "--default-signal", "true"], capture_output=True).returncode == 0
    return ("env", "--default-signal") if usable else ()


def spawn_sandbox(layout: SandboxLayout, command: Sequence[str], *, default_signals: bool = True,
                  **popen_kwargs: object) -> SandboxProcess:
    """Start `command` in the sandbox, limited from its first instruction; bwrap gets an empty environment.
    `default_signals=False` for a command that resets ignored signals itself (our server), which spares the
    probe for `env --default-signal` (a process) and one exec."""
    cgroups = make_cgroups(layout.limits)
    try:
        prefix = _default_signals_prefix() if default_signals else ()
        argv = sandbox_argv(layout, [*prefix, *command], cgroups)
        popen = _SPAWNER.submit(subprocess.Popen, argv, env={}, start_new_session=True, **popen_kwargs).result()
    except BaseException:
        if cgroups is not None:
            cgroups.remove()
        raise
    return SandboxProcess(popen, cgroups)


@contextmanager
def scratch_dirs(base: str | Path | None = None) -> Iterator[tuple[Path, Path]]:
    """A fresh per-instance (home, tmp) pair of host directories, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="oec-sandbox-", dir=base or process_scratch_dir()))
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
    limit_exceeded: str | None = None
    """Why the sandbox was stopped early when it passed a limit (the disk limit); None otherwise."""


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


DISK_CHECK_INTERVAL_S = 0.5
"""How often the host measures what a running sandbox wrote."""


def run_sandboxed(
    command: str,
    workspace: str | Path,
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    ro_binds: Sequence[str | Path] = (),
    mount: str = "/testbed",
    max_output_bytes: int = 32 * 1024 * 1024,
    limits: SandboxLimits | None = None,
) -> SandboxResult:
    """Run one bash command in the sandbox with `workspace` writable at `mount` (also the cwd).

    Home and /tmp are fresh and discarded afterwards; only changes to the workspace persist. At `timeout` seconds
    (or when it writes more than the disk limit) the whole process tree is killed and `timed_out` (or
    `limit_exceeded`) is set. Host directories named by `env` (VIRTUAL_ENV, PATH entries, e.g. a test venv) are
    visible; `ro_binds` (`HOST` or `HOST:SANDBOX`) adds any other host path, read-only.
    """
    with scratch_dirs() as (home, tmp):
        layout = SandboxLayout.create(
            workspace, home, tmp, mount=mount, env=env, ro_binds=ro_binds, uid=sandbox_uid(), limits=limits
        )
        with sandbox_owns(layout):
            disk = DiskWatch(layout.writable, layout.limits.disk_mb)
            started = time.monotonic()
            sandbox = spawn_sandbox(
                layout, ["bash", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            output = _BoundedOutput(max_output_bytes)
            reader = threading.Thread(target=_drain, args=(sandbox.popen, output), daemon=True)
            reader.start()
            timed_out, limit_exceeded = False, None
            try:
                limit_exceeded = _wait_watching_disk(sandbox.popen, disk, started + timeout)
                timed_out = limit_exceeded is None and sandbox.popen.poll() is None
            finally:
                sandbox.kill()
            reader.join()
            duration = time.monotonic() - started
    returncode = sandbox.popen.returncode
    exit_code = returncode if returncode >= 0 else 128 - returncode
    return SandboxResult(exit_code, output.text(), timed_out, duration, limit_exceeded)


def _wait_watching_disk(process: subprocess.Popen[bytes], disk: DiskWatch, deadline: float) -> str | None:
    """Wait for the process until the deadline; returns why it was stopped early when it wrote too much."""
    while (left := deadline - time.monotonic()) > 0:
        try:
            process.wait(timeout=min(left, DISK_CHECK_INTERVAL_S))
            return None
        except subprocess.TimeoutExpired:
            try:
                disk.check()
            except SandboxLimitExceeded as exc:
                return str(exc)
    return None


def _drain(process: subprocess.Popen[bytes], output: _BoundedOutput) -> None:
    assert process.stdout is not None
    while chunk := process.stdout.read1(65536):
        output.feed(chunk)
    process.stdout.close()
