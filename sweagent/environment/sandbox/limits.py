"""Resource limits of one sandbox: memory and processes (cgroups, else rlimits), file size, and disk writes.

A model-written command must not be able to take the machine down: a memory hog is OOM-killed inside its own
cgroup, a fork bomb meets `pids.max` (or RLIMIT_NPROC where no cgroup can be made), a single file stops growing at
RLIMIT_FSIZE, and the total bytes written to the writable mounts are watched from the host (`DiskWatch`), which
kills the sandbox when they pass the limit. Each hit shows up as an ordinary observation (`Killed`, `fork: Resource
temporarily unavailable`, `File size limit exceeded`) or, for disk, as a clear environment error.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

_MIB = 1024 * 1024
_CGROUP_ROOT = Path("/sys/fs/cgroup")


class SandboxLimits(BaseModel):
    """The `limits` section of a sandbox deployment (and of every one-shot sandboxed command)."""

    memory_mb: int = Field(4096, gt=0)
    """Memory of all processes in the sandbox together (cgroup); per process (RLIMIT_AS) where no cgroup can be made."""
    pids: int = Field(512, gt=0)
    """Processes and threads at once (cgroup `pids.max`, else RLIMIT_NPROC of the sandbox user)."""
    disk_mb: int = Field(1024, gt=0)
    """Bytes the sandbox may add to its writable mounts (workspace, home, /tmp) together; also the largest file."""

    model_config = ConfigDict(extra="forbid")


class SandboxLimitExceeded(RuntimeError):
    """The sandbox passed one of its limits and was stopped; the message says which and by how much."""


def disk_usage(roots: Iterable[Path]) -> int:
    """Bytes allocated under `roots`, each inode counted once; symlinks are not followed (they may point anywhere)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [str(root) for root in roots]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:  # removed meanwhile, or not a directory
            continue
        with entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if (info.st_dev, info.st_ino) in seen:
                    continue
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


class DiskWatch:
    """Compares the bytes under the writable mounts with what they held when the sandbox started."""

    def __init__(self, roots: Sequence[Path], limit_mb: int) -> None:
        self._roots = list(roots)
        self._limit = limit_mb * _MIB
        self._baseline = disk_usage(self._roots)

    def check(self) -> None:
        """Raise SandboxLimitExceeded when the sandbox wrote more than its limit."""
        added = disk_usage(self._roots) - self._baseline
        if added > self._limit:
            raise SandboxLimitExceeded(
                f"disk limit exceeded: the sandbox wrote {added / _MIB:.0f} MiB (limit {self._limit // _MIB} MiB)"
            )


@dataclass
class Cgroups:
    """The per-sandbox cgroup directories (one per v1 hierarchy, or one v2 group); removed by `remove()`."""

    dirs: list[Path]

    @property
    def procs_files(self) -> list[Path]:
        return [path / "cgroup.procs" for path in self.dirs]

    def remove(self) -> None:
        """Remove the groups once their processes are gone (a sandbox is killed before this is called)."""
        for path in self.dirs:
            try:
                path.rmdir()
            except OSError as exc:
                logger.debug("could not remove cgroup %s: %s", path, exc)


def _own_cgroup_paths() -> dict[str, Path]:
    """This process's cgroup per controller ('' for the v2 unified hierarchy), from /proc/self/cgroup."""
    paths: dict[str, Path] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = Path(path.lstrip("/"))
    return paths


def _remove_stale(parent: Path) -> None:
    """Groups left by a process that was killed (names carry the creator's pid) are removed when empty."""
    for child in parent.glob("oec-sandbox-*"):
        pid = child.name.split("-")[2]
        if pid.isdigit() and not Path("/proc", pid).exists():
            try:
                child.rmdir()
            except OSError:
                pass


def _make_group(parent: Path, settings: dict[str, str]) -> Path:
    _remove_stale(parent)
    path = parent / f"oec-sandbox-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    try:
        for name, value in settings.items():
            (path / name).write_text(value)
    except OSError:
        path.rmdir()
        raise
    return path


def _v1_groups(limits: SandboxLimits, own: dict[str, Path]) -> list[Path]:
    memory_bytes = str(limits.memory_mb * _MIB)
    wanted = {"memory": {"memory.limit_in_bytes": memory_bytes}, "pids": {"pids.max": str(limits.pids)}}
    made: list[Path] = []
    try:
        for controller, settings in wanted.items():
            base = _CGROUP_ROOT / controller
            parent = base / own.get(controller, Path())
            if not (parent / "cgroup.procs").exists():
                parent = base
            group = _make_group(parent, settings)
            made.append(group)
            if controller == "memory" and (group / "memory.memsw.limit_in_bytes").exists():
                (group / "memory.memsw.limit_in_bytes").write_text(memory_bytes)  # no escape into swap
    except OSError:
        Cgroups(made).remove()
        raise
    return made


def _v2_group(limits: SandboxLimits, own: dict[str, Path]) -> list[Path]:
    parent = _CGROUP_ROOT / own.get("", Path())
    enabled = (parent / "cgroup.subtree_control").read_text().split()
    if not {"memory", "pids"} <= set(enabled):
        raise OSError("the memory and pids controllers are not enabled for child cgroups")
    settings = {"memory.max": str(limits.memory_mb * _MIB), "memory.swap.max": "0", "pids.max": str(limits.pids)}
    return [_make_group(parent, settings)]


def make_cgroups(limits: SandboxLimits) -> Cgroups | None:
    """A fresh group with the memory and pids limits, or None where this process cannot make one."""
    if os.geteuid() != 0:
        return None
    try:
        own = _own_cgroup_paths()
        if (_CGROUP_ROOT / "cgroup.controllers").exists():
            return Cgroups(_v2_group(limits, own))
        return Cgroups(_v1_groups(limits, own))
    except (OSError, ValueError) as exc:
        logger.debug("no cgroup for the sandbox (%s); falling back to rlimits", exc)
        return None


def limits_prefix(limits: SandboxLimits, cgroups: Cgroups | None, prlimit: str) -> list[str]:
    """The command prefix that puts the sandbox into its cgroups and sets its rlimits, before bwrap starts.

    The prefix runs as the caller (root when cgroups are used): a shell moves itself into each group, then
    `prlimit` sets the limits that cgroups do not cover and execs the rest, so the sandbox is limited from its
    first instruction on.
    """
    rlimits = [f"--fsize={limits.disk_mb * _MIB}"]
    if cgroups is None:
        rlimits += [f"--as={limits.memory_mb * _MIB}", f"--nproc={limits.pids}"]
    prefix = [prlimit, *rlimits, "--"]
    if cgroups is None or not cgroups.dirs:
        return prefix
    join = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
    return ["/bin/sh", "-c", join, "oec-sandbox", *map(str, cgroups.procs_files), "--", *prefix]
