"""The `docker` deployment: the sandbox's own server and host runtime, in a docker (or podman) container.

Starting it runs `python -I -m sweagent.environment.sandbox.server --stdio` in the instance's image with OEC's
Python runtime bound read-only at its host paths (the venv, the base interpreter and the `sweagent` package, as in
the sandbox), so nothing is installed into the image and nothing listens on a port: requests and replies travel on
the container's stdin/stdout, which the server takes over at once, and `SandboxRuntime` bounds and checks every
reply exactly as for bubblewrap. The container has no network, no capabilities once it runs the server (a root
entry step gives the workspace and home to an unprivileged user, then `setpriv` drops to it), memory, process and
file-size limits, and only the variables we pass. What it writes is measured in its writable layer, as the sandbox
measures its mounts. Should OEC die, even by `kill -9`, the engine closes the container's stdin, the server exits
and `--rm` removes the container.

The image holds the pristine repository at the working dir (SWE-smith's layout, `/testbed`). At start the
deployment makes the instance's starting state there the way `task_repos/workspace.py` does on the host: a fresh one-commit
history with the bug applied and the FAIL_TO_PASS test files removed, so neither the fix nor the hidden tests are
in reach (the image's own history, which holds both, is deleted in the container's layer).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field
from swerex.exceptions import DeploymentStartupError
from swerex.runtime.abstract import Command

from sweagent.environment.problem import InstanceProblem, ProblemSource
from sweagent.environment.sandbox.bwrap import (
    BASE_ENV, SANDBOX_STAGING, SANDBOX_UID, SYSTEM_DIRS, python_runtime_paths, validate_mount,
)
from sweagent.environment.sandbox.limits import DiskWatch, SandboxLimits
from sweagent.environment.sandbox.runtime import SandboxRuntime, ServerDeployment
from sweagent.environment.task_repos.profiles import files_of_tests
from sweagent.environment.task_repos.workspace import _EXCLUDES, _GIT_ENV, _LOCAL_CONFIG
from sweagent.instance import TaskInstance
from sweagent.utils.errors import OECError
from sweagent.utils.scratch import process_scratch_dir

if TYPE_CHECKING:
    from sweagent.environment.swe_env import EnvironmentConfig

BUILD_COMMAND = "scripts/docker_images.sh build"
"""What builds the images of an instance file (named in the error for a missing image)."""
START_ENGINE_COMMAND = "scripts/docker_images.sh engine"
"""What starts a docker daemon without a bridge network (named in the error for an engine that does not answer)."""
_ENTRY_CAPS = ("CHOWN", "DAC_READ_SEARCH", "SETUID", "SETGID")
"""Capabilities of the root entry step only: hand the workspace and home to the user, then switch to it."""
_PATCH_FILE = "starting-state.patch"
_PREPARE_TIMEOUT_S = 300.0
_ENGINE_TIMEOUT_S = 60.0


class ContainerError(OECError):
    """No usable engine or image: the message is one line naming what is missing and the command that fixes it."""


class ContainerDeploymentConfig(BaseModel):
    """Run commands in a container of the instance's image (SWE-smith's layout), with no network."""

    type: Literal["docker"] = "docker"
    """Discriminator for (de)serialization/CLI. Do not change."""
    engine: str = "docker"
    """Container CLI: `docker`, or `podman` (same flags), by name on PATH or as a path."""
    image: str | None = None
    """Image for instances without an `image_name` (an instance's own image always wins)."""
    env: dict[str, str] = {}
    """Extra environment variables in the container (on top of the image's own, e.g. its test venv on PATH)."""
    startup_timeout: float = Field(60.0, gt=0)
    """Seconds the server in the container may take to answer its first request."""
    scratch_dir: str | None = None
    """Host folder for the upload staging folder (default: system temp)."""
    uid: int = Field(SANDBOX_UID, gt=0)
    """User (and group) id that the server and every command run as inside the container."""
    limits: SandboxLimits = SandboxLimits()
    """Memory and processes of the container (cgroup), the largest file, and the bytes its writable layer may add."""

    model_config = ConfigDict(extra="forbid")

    def image_for(self, problem: ProblemSource) -> str:
        """The image a problem runs in: its own `image_name`, else the config's `image`."""
        image = problem.image_name or self.image
        if not image:
            raise ContainerError(f"instance {problem.id}: no key 'image_name' and no env.deployment.image to run it in")
        return image

    def for_problem(self, problem: ProblemSource, env: EnvironmentConfig) -> ContainerDeployment:
        """A deployment that runs `problem` (a task instance) in its image, its starting state made at the working dir."""
        if not isinstance(problem, InstanceProblem):
            raise ContainerError(f"{problem.id}: the docker deployment runs task instances; use the sandbox deployment for a local repository")
        instance = problem.instance
        state = StartingState(instance.patch, tuple(files_of_tests(instance.FAIL_TO_PASS)), env.working_dir)
        return ContainerDeployment(self, image=self.image_for(problem), state=state, name=_container_name(problem.id))

    def setup_commands(self, problem: ProblemSource, working_dir: str) -> list[str]:
        """None: the deployment made the starting state while it started."""
        return []

    def tool_python(self) -> str | None:
        """None: the image's python3 runs the helpers, with their packages uploaded (`sweagent/tools/tool_packages.py`)."""
        return None

    def check_instances(self, instances: Sequence[TaskInstance], where: str) -> None:
        """Fail fast, with one line, when the engine does not answer, an instance's image is missing or OEC's
        interpreter cannot be shown to a container."""
        try:
            for image in sorted({self.image_for(InstanceProblem(instance)) for instance in instances}):
                inspect_image(self.engine, image)
            server_binds()
        except ContainerError as exc:
            raise ContainerError(f"key 'env.deployment': {exc}") from None


@dataclass(frozen=True)
class StartingState:
    """What the deployment makes of the image's pristine tree: the bug applied, the graded test files removed."""

    patch: str
    hidden_files: tuple[str, ...]
    mount: str

    def script(self, patch_path: str) -> str:
        """Bash that turns the pristine tree into the starting state as `workspace.build_workspace` does, with the
        same identity, dates and excludes, so both give the same commit."""
        quote = shlex.quote
        lines = ["set -euo pipefail", *(f"export {key}={quote(value)}" for key, value in _GIT_ENV.items())]
        lines += [f"cd {quote(self.mount)}", "rm -rf .git", "git init --quiet --initial-branch=main"]
        lines += [f"git config --local {quote(key)} {quote(value)}" for key, value in _LOCAL_CONFIG.items()]
        lines.append(f"printf '%s\\n' {' '.join(map(quote, _EXCLUDES))} > .git/info/exclude")
        if self.patch.strip():
            lines.append(f"git apply --whitespace=nowarn {quote(patch_path)}")
        for test_file in self.hidden_files:
            missing = f"FAIL_TO_PASS names test file {test_file}, which is not in the image's tree"
            lines.append(f"[ -f {quote(test_file)} ] || {{ echo {quote(missing)} >&2; exit 3; }}; rm -- {quote(test_file)}")
        lines += ["git add --all", "git commit --quiet --no-verify -m 'Task starting state'"]
        return "\n".join(lines) + "\n"


def _container_name(problem_id: str) -> str:
    """A fresh name per start (rollouts of one instance may run at once): `oec-<id>-<random>`."""
    return f"oec-{problem_id[:100]}-{uuid.uuid4().hex[:8]}"


def run_engine(engine: str, *args: str, timeout: float = _ENGINE_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """One engine CLI call, its output captured; a CLI that is not installed is a one-line ContainerError."""
    try:
        return subprocess.run([engine, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ContainerError(f"{engine}: not installed (apt-get install -y docker.io, or set env.deployment.engine)") from None


def engine_failure(engine: str, result: subprocess.CompletedProcess[str]) -> ContainerError | None:
    """The one-line error for an engine that does not answer (not running, no permission); None otherwise."""
    message = " ".join(result.stderr.split())
    if "Cannot connect" in message or "Is the docker daemon running" in message or "permission denied" in message.lower():
        return ContainerError(f"{engine}: the container engine does not answer ({message[:200]}); start it with `{START_ENGINE_COMMAND}`")
    return None


def inspect_image(engine: str, image: str) -> str:
    """The image's id; a one-line ContainerError when the engine is down or the image does not exist."""
    result = run_engine(engine, "image", "inspect", "--format", "{{.Id}}", image)
    if result.returncode == 0:
        return result.stdout.strip()
    raise engine_failure(engine, result) or ContainerError(
        f"image '{image}' does not exist in {engine}: build it with `{BUILD_COMMAND}` (add `--instances FILE` for your own instances)"
    )


def server_binds() -> list[Path]:
    """Host paths bound read-only, at the same place, into every container: OEC's venv, its base interpreter and
    the `sweagent` package, which run the sandbox server there.

    An interpreter installed under a system folder (Debian's /usr/bin/python3.11) cannot be: binding /usr would
    replace the image's own toolchain (its git, its Python, docker's init) with the host's.
    """
    paths = _outermost(python_runtime_paths())
    system = [path for path in paths if len(path.parts) > 1 and path.parts[1] in SYSTEM_DIRS]
    if system:
        raise ContainerError(
            f"the docker deployment runs OEC's server with OEC's own Python bound into the container, and this one "
            f"lives in {system[0]} (a system folder the image has its own of): put a Python 3.11 installed outside "
            f"/usr (pyenv's, uv's) first on PATH and make OEC's venv anew with scripts/setup.sh"
        )
    return paths


def _outermost(paths: Sequence[Path]) -> list[Path]:
    """Distinct paths without the ones inside another (a bind brings everything below it)."""
    unique = {Path(os.path.abspath(path)) for path in paths}
    return sorted(path for path in unique if not any(path != other and path.is_relative_to(other) for other in unique))


class ContainerProcess:
    """The engine client attached to the container (`start -ai`); killing it kills the container first."""

    def __init__(self, engine: str, name: str, popen: subprocess.Popen[bytes]) -> None:
        self.engine = engine
        self.name = name
        self.popen = popen

    def kill(self) -> None:
        """Kill the container (every process in it) and its client, and wait until `--rm` has removed it."""
        if self.popen.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                subprocess.run([self.engine, "kill", self.name], capture_output=True, timeout=_ENGINE_TIMEOUT_S)
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
        self.popen.wait()
        deadline = time.monotonic() + _ENGINE_TIMEOUT_S
        while run_engine(self.engine, "inspect", "--format", "{{.Id}}", self.name).returncode == 0 and time.monotonic() < deadline:
            time.sleep(0.1)


@dataclass(frozen=True)
class ContainerStaging:
    """The host folder the container sees read-only at SANDBOX_STAGING (uploads and the starting-state patch)."""

    staging: Path

    def staged_path(self, host_path: Path) -> str:
        return str(PurePosixPath(SANDBOX_STAGING) / host_path.relative_to(self.staging))


class ContainerDeployment(ServerDeployment):
    kind = "container"

    def __init__(
        self, config: ContainerDeploymentConfig, *, image: str, state: StartingState, name: str,
        logger: logging.Logger | None = None,
    ) -> None:
        validate_mount(state.mount)
        super().__init__(logger)
        self._config = config
        self.image = image
        self._state = state
        self.name = name
        self._upper: Path | None = None

    def create_argv(self, staging: Path) -> list[str]:
        """`<engine> create` for the server's container: no network, limits, the runtime and staging read-only."""
        config, limits, uid = self._config, self._config.limits, self._config.uid
        binds = [*((path, str(path)) for path in server_binds()), (staging, SANDBOX_STAGING)]
        env = {**{key: value for key, value in BASE_ENV.items() if key != "PATH"}, **config.env}
        argv = [config.engine, "create", "--interactive", "--rm", "--init", "--name", self.name, "--network", "none"]
        argv += ["--hostname", "sandbox", "--workdir", self._state.mount, "--cap-drop", "ALL"]
        argv += [arg for cap in _ENTRY_CAPS for arg in ("--cap-add", cap)]
        argv += ["--security-opt", "no-new-privileges", "--pids-limit", str(limits.pids)]
        argv += ["--memory", f"{limits.memory_mb}m", "--memory-swap", f"{limits.memory_mb}m"]
        argv += ["--ulimit", f"fsize={limits.disk_mb * 1024 * 1024}"]
        argv += [arg for host, inside in binds for arg in ("--mount", f"type=bind,src={host},dst={inside},readonly")]
        argv += [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
        # As root with the capabilities above: give the workspace and home to the user; setpriv drops to it with
        # no capability left (no-new-privileges keeps it so), then the server takes over stdin/stdout.
        owner = f"{uid}:{uid}"
        # Only what the user does not own yet is changed (OEC's images own it already): a chown copies a file up.
        entry = (f'find "$0" ! -user {uid} -exec chown -h {owner} {{}} + && mkdir -p /root && chown {owner} /root && '
                 f'exec setpriv --reuid={uid} --regid={uid} --clear-groups --inh-caps=-all -- "$@"')
        server = [sys.executable, "-I", "-m", "sweagent.environment.sandbox.server", "--stdio"]
        return [*argv, self.image, "/bin/sh", "-c", entry, self._state.mount, *server]

    async def start(self) -> None:
        """Start the container's server, make the starting state, then measure writes from there on."""
        if self._runtime is not None:
            return
        self._hooks.on_custom_step("Starting container")
        inspect_image(self._config.engine, self.image)
        try:
            staging = Path(self._scratch.enter_context(tempfile.TemporaryDirectory(prefix="oec-upload-", dir=self._config.scratch_dir or process_scratch_dir())))
            os.chmod(staging, 0o755)  # the container's user reads staged files (read-only) from here
            patch = self._state.patch
            (staging / _PATCH_FILE).write_text(patch if patch.endswith("\n") else patch + "\n", encoding="utf-8")  # git apply wants it
            runtime = self._spawn(staging)
        except BaseException:
            self._scratch.close()
            raise
        self._runtime = runtime
        try:
            await self._prepare(runtime, staging)
        except BaseException:
            await self.stop()
            raise
        self.logger.debug("container %s started from %s", self.name, self.image)

    def _spawn(self, staging: Path) -> SandboxRuntime:
        created = run_engine(self._config.engine, *self.create_argv(staging)[1:])
        if created.returncode != 0:
            raise engine_failure(self._config.engine, created) or DeploymentStartupError(
                f"{self._config.engine} create failed for image {self.image}: {' '.join(created.stderr.split())[:500]}"
            )
        upper = run_engine(self._config.engine, "inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", self.name).stdout.strip()
        popen = subprocess.Popen(
            [self._config.engine, "start", "--attach", "--interactive", self.name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
        assert popen.stdin is not None and popen.stdout is not None and popen.stderr is not None
        self._upper = Path(upper) if upper.startswith("/") else None
        process = ContainerProcess(self._config.engine, self.name, popen)
        return SandboxRuntime(process, popen.stdin, popen.stdout, ContainerStaging(staging), log=popen.stderr, disk=None, logger=self.logger)

    async def _prepare(self, runtime: SandboxRuntime, staging: Path) -> None:
        alive = await runtime.is_alive(timeout=self._config.startup_timeout)
        if not alive:
            raise DeploymentStartupError(f"the server in container {self.name} ({self.image}) did not start: {alive.message}")
        script = self._state.script(ContainerStaging(staging).staged_path(staging / _PATCH_FILE))
        result = await runtime.execute(Command(command=["bash", "-c", script], timeout=_PREPARE_TIMEOUT_S, merge_output_streams=True))
        if result.exit_code != 0:
            output = " ".join(result.stdout.split())[-500:]
            raise DeploymentStartupError(f"image {self.image}: making the starting state at {self._state.mount} failed ({result.exit_code}): {output}")
        if self._upper is None:
            self.logger.warning("%s reports no writable layer for %s: its disk limit is not enforced", self._config.engine, self.name)
        else:
            runtime.watch_disk(DiskWatch([self._upper], self._config.limits.disk_mb))
