"""The `sandbox` deployment: our sandbox server (swerex's runtime API) inside bubblewrap, for machines without docker.

Starting it launches `python -I -m sweagent.environment.sandbox.server` in the sandbox layout of `bwrap.py`
(workspace writable at the mount point, per-instance /root and /tmp, only the toolchain visible, no network, an
unprivileged user, resource limits) and talks to it over two private pipes. The agent sees an ordinary swerex
deployment and runtime.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, wait
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field
from swerex.exceptions import DeploymentStartupError

from sweagent.environment.sandbox.bwrap import (
    SANDBOX_UID,
    SandboxLayout,
    chown_tree,
    sandbox_owns,
    sandbox_uid,
    scratch_dirs,
    spawn_sandbox,
    validate_mount,
)
from sweagent.environment.sandbox.limits import DiskWatch, SandboxLimits
from sweagent.environment.sandbox.runtime import SandboxRuntime, ServerDeployment
from sweagent.environment.task_repos.profiles import RepoProfileError, get_profile
from sweagent.instance import InstanceError, TaskInstance
from sweagent.utils.scratch import process_scratch_dir, remove_later
from sweagent.utils.threads import in_thread

if TYPE_CHECKING:
    from sweagent.environment.problem import ProblemSource
    from sweagent.environment.swe_env import EnvironmentConfig

SERVER_COMMAND = [sys.executable, "-I", "-m", "sweagent.environment.sandbox.server"]
"""`-I` keeps the caller's PYTHONPATH (meant for the task's code) out of the server's own imports."""



class SandboxDeploymentConfig(BaseModel):
    """Run commands in a bubblewrap sandbox on this machine (no docker, no network, read-only host)."""

    type: Literal["sandbox"] = "sandbox"
    """Discriminator for (de)serialization/CLI. Do not change."""
    env: dict[str, str] = {}
    """Extra environment variables inside the sandbox (the task's own variables, e.g. its test venv, go on top)."""
    ro_binds: list[str] = []
    """Extra host paths visible read-only inside, as `HOST` (same path) or `HOST:SANDBOX`."""
    startup_timeout: float = 30.0
    """Seconds the sandbox server may take to answer its first request."""
    scratch_dir: str | None = None
    """Host folder for the per-instance home and /tmp when the caller does not give them (default: system temp)."""
    uid: int = Field(SANDBOX_UID, gt=0)
    """Host user (and group) id that commands run as when OEC runs as root; otherwise they run as the caller."""
    limits: SandboxLimits = SandboxLimits()
    """Memory, processes and disk writes of the whole sandbox."""

    model_config = ConfigDict(extra="forbid")

    def for_problem(self, problem: ProblemSource, env: EnvironmentConfig) -> SandboxDeployment:
        """A deployment whose workspace, a fresh host folder, the problem's repository is built into while the
        server starts; the folder goes when the deployment stops, unless `env.keep_workspace`."""
        root = env.workspace_root
        if env.keep_workspace and root is not None:
            root.mkdir(parents=True, exist_ok=True)
        parent = root if env.keep_workspace else process_scratch_dir(root)
        host_dir = Path(tempfile.mkdtemp(prefix=f"{problem.id}.", dir=parent))
        (host_dir / "repo").mkdir()
        variables, ro_binds = problem.sandbox_options(env.working_dir)
        # Upload staging folders, too, live in this process's scratch folder, so a kill leaves nothing behind.
        config = self.model_copy(update={"scratch_dir": str(process_scratch_dir(self.scratch_dir))})
        deployment = config.get_deployment(
            workspace=host_dir / "repo", home=host_dir / "home", tmp=host_dir / "tmp", mount=env.working_dir,
            env=variables, ro_binds=ro_binds, fill_workspace=lambda repo_dir: _build_into(problem, repo_dir),
        )
        deployment.remove_at_stop = None if env.keep_workspace else host_dir
        return deployment

    def setup_commands(self, problem: ProblemSource, working_dir: str) -> list[str]:
        """None: the workspace is the starting state."""
        return []

    def tool_python(self) -> str | None:
        """OEC's own interpreter: the sandbox shows its environment read-only, so helpers import its packages there."""
        return sys.executable

    def check_instances(self, instances: Sequence[TaskInstance], where: str) -> None:
        """Every instance names a repository profile (its workspace and test venv are built from one)."""
        for instance in instances:
            try:
                get_profile(instance.repo)
            except RepoProfileError as exc:
                raise InstanceError(f"{where}: instance '{instance.instance_id}': key 'repo': {exc}") from None

    def get_deployment(
        self,
        *,
        workspace: str | Path,
        home: str | Path | None = None,
        tmp: str | Path | None = None,
        mount: str = "/testbed",
        env: Mapping[str, str] | None = None,
        ro_binds: Sequence[str | Path] = (),
        fill_workspace: Callable[[Path], None] | None = None,
    ) -> SandboxDeployment:
        """A deployment for one instance whose repository is the host folder `workspace`.

        `home` and `tmp` (host folders for /root and /tmp) are created if missing and kept; when not given,
        fresh ones are made under `scratch_dir` and removed at stop. `env` and `ro_binds` add to the config's.
        `fill_workspace`, when given, puts the repository into the (empty) `workspace` while the server starts.
        """
        return SandboxDeployment(
            self,
            workspace=Path(workspace),
            home=None if home is None else Path(home),
            tmp=None if tmp is None else Path(tmp),
            mount=mount,
            env={**self.env, **(env or {})},
            ro_binds=[*self.ro_binds, *ro_binds],
            fill_workspace=fill_workspace,
        )


def _build_into(problem: ProblemSource, repo_dir: Path) -> None:
    """Build the repository beside the mounted (empty) `repo_dir`, then move its entries in (the mount is that
    folder, so it must stay; each move is one rename)."""
    built = repo_dir.with_name("built")
    problem.build_workspace(built)
    for entry in built.iterdir():
        entry.rename(repo_dir / entry.name)
    built.rmdir()


class SandboxDeployment(ServerDeployment):
    kind = "sandbox"
    remove_at_stop: Path | None = None
    """A host folder (the workspace's parent) deleted in the background once the sandbox has stopped."""

    def __init__(
        self,
        config: SandboxDeploymentConfig,
        *,
        workspace: Path,
        home: Path | None,
        tmp: Path | None,
        mount: str,
        env: Mapping[str, str],
        ro_binds: Sequence[str | Path],
        fill_workspace: Callable[[Path], None] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._config = config
        self._workspace = workspace
        self._fill_workspace = fill_workspace
        validate_mount(mount)
        self._dirs = (home, tmp)
        self._mount = mount
        self._env = dict(env)
        self._ro_binds = list(ro_binds)
        super().__init__(logger)

    def _layout(self) -> SandboxLayout:
        home, tmp = self._dirs
        if home is None or tmp is None:
            scratch_home, scratch_tmp = self._scratch.enter_context(scratch_dirs(self._config.scratch_dir))
            home, tmp = home or scratch_home, tmp or scratch_tmp
        home.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)
        staging_dir = tempfile.TemporaryDirectory(prefix="oec-upload-", dir=self._config.scratch_dir or process_scratch_dir())
        staging = self._scratch.enter_context(staging_dir)
        os.chmod(staging, 0o755)  # the sandbox user reads staged uploads (read-only) from here
        return SandboxLayout.create(
            self._workspace, home, tmp, mount=self._mount, env=self._env, ro_binds=self._ro_binds, staging=staging,
            uid=sandbox_uid(self._config.uid), limits=self._config.limits,
        )

    async def start(self) -> None:
        """Start the sandbox server and wait until it answers; the workspace is filled meanwhile, if asked.

        The server's interpreter takes a few hundredths of a second to start, and so does building a workspace
        (git, in other processes), so `fill_workspace` runs on a helper thread from before the spawn: the
        empty workspace folder is mounted, and what is put into it is visible inside. It then goes to the sandbox
        user, and the disk limit counts from that state on.
        """
        if self._runtime is not None:
            return
        self._hooks.on_custom_step("Starting sandbox")
        runtime = None
        filling: Future[None] | None = None
        try:
            layout = self._layout()
            self._scratch.enter_context(sandbox_owns(layout))
            if self._fill_workspace is not None:
                filling = in_thread(self._fill_workspace, self._workspace, name="oec-workspace-build")
            runtime = self._spawn(layout, watch_disk=filling is None)
            if filling is not None:
                filling.result()
                if layout.uid is not None:
                    chown_tree(self._workspace, layout.uid, layout.uid)
                runtime.watch_disk(DiskWatch(layout.writable, layout.limits.disk_mb))
        except BaseException:
            if filling is not None:
                wait([filling])  # its files live in the scratch folders closed below
            if runtime is not None:
                runtime.terminate()
            self._scratch.close()
            raise
        alive = await runtime.is_alive(timeout=self._config.startup_timeout)
        if not alive:
            await runtime.close()
            self._scratch.close()
            raise DeploymentStartupError(f"the sandbox server did not start: {alive.message}")
        self._runtime = runtime
        self.logger.debug("sandbox started: %s at %s", self._workspace, self._mount)

    async def stop(self) -> None:
        """Kill the sandbox at once (its pid namespace takes every process in it, and nothing inside needs an
        orderly end: the workspace lives on the host), then give back and remove its scratch folders."""
        try:
            if self._runtime is not None:
                self._runtime.terminate()
                self._runtime = None
        finally:
            try:
                self._discard_folder()
            finally:
                self._scratch.close()

    def _discard_folder(self) -> None:
        """Move `remove_at_stop` out of the way and delete it in the background (a tenth of a second or more, off
        the critical path); the sandbox's folders in it are then gone before they would be handed back to us."""
        if self.remove_at_stop is None:
            return
        doomed, self.remove_at_stop = self.remove_at_stop, None
        trash = doomed.with_name(f".{doomed.name}.removing")
        try:
            os.rename(doomed, trash)
        except OSError:
            trash = doomed
        remove_later(trash)

    def _spawn(self, layout: SandboxLayout, *, watch_disk: bool) -> SandboxRuntime:
        """Start the server with its two private pipes passed as extra descriptors (not stdin/stdout); its disk
        use is measured from now on if `watch_disk`, else from the runtime's `watch_disk` call."""
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        try:
            sandbox = spawn_sandbox(
                layout, [*SERVER_COMMAND, str(request_read), str(reply_write)], default_signals=False,  # it resets them
                pass_fds=(request_read, reply_write),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )
        except BaseException:
            os.close(request_write)
            os.close(reply_read)
            raise
        finally:
            os.close(request_read)
            os.close(reply_write)
        requests, replies = os.fdopen(request_write, "wb"), os.fdopen(reply_read, "rb")
        assert sandbox.popen.stdout is not None
        disk = DiskWatch(layout.writable, layout.limits.disk_mb) if watch_disk else None
        return SandboxRuntime(sandbox, requests, replies, layout, log=sandbox.popen.stdout, disk=disk, logger=self.logger)
