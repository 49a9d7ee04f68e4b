"""SWEEnv: one task's repository inside a SWE-ReX deployment (sandbox here, docker/modal on a cluster).

The agent only sees `communicate`, file operations and `get_patch`; which deployment runs the commands is the
config's business, as in SWE-ReX.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from swerex.runtime.abstract import (
    BashAction,
    BashInterruptAction,
    CreateBashSessionRequest,
    ReadFileRequest,
    UploadRequest,
    WriteFileRequest,
)

from sweagent.environment.deployment import ContainerDeploymentConfig, DeploymentConfig, SandboxDeploymentConfig
from sweagent.environment.problem import ProblemSource
from sweagent.utils.scratch import process_scratch_dir

logger = logging.getLogger(__name__)

# Deleting a finished rollout's workspace (its git objects included) takes a tenth of a second or more on a busy
# disk. One background thread does it, off the rollout's critical path; the interpreter waits for it at exit, and a
# killed process's leftovers are swept with its scratch folder by the next process.
_REMOVER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="oec-workspace-remover")


class SWEEnvError(RuntimeError):
    """The environment failed (deployment died, setup command failed); ends the run with exit_environment_error."""


class EnvironmentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment: DeploymentConfig = Field(default_factory=SandboxDeploymentConfig)
    """Where commands run: `sandbox` (bubblewrap, no docker needed), `docker` (the instance's image) or `modal`."""
    working_dir: str = "/testbed"
    """Path of the repository inside the environment."""
    post_startup_commands: list[str] = []
    """Shell commands run once after the repository is ready."""
    workspace_root: Path | None = None
    """Host folder for per-instance workspaces of the sandbox deployment (default: the system temp folder). They sit
    in a folder of the running process, which the next run removes if the process was killed."""
    keep_workspace: bool = False
    """Keep the host workspace after the run (for debugging); it is then put directly in `workspace_root`."""
    startup_timeout: float = Field(60, gt=0)
    """Seconds the deployment and shell may take to start."""

    @field_validator("working_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"expected an absolute path inside the environment such as /testbed, got '{value}'")
        return value

    @field_validator("workspace_root")
    @classmethod
    def _folder(cls, value: Path | None) -> Path | None:
        if value is not None and value.exists() and not value.is_dir():
            raise ValueError(f"'{value}' is a file, expected a folder")
        return value


class SWEEnv:
    def __init__(self, config: EnvironmentConfig, problem: ProblemSource):
        self.config = config
        self.problem = problem
        self._loop = asyncio.new_event_loop()
        self._deployment: Any = None
        self._host_dir: Path | None = None
        self.last_exit_code: int | None = None

    def _run(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(coroutine)

    @property
    def runtime(self) -> Any:
        return self._deployment.runtime

    def start(self) -> None:
        """Build the repository, start the deployment and open the shell session in the working directory."""
        deployment_config = self.config.deployment
        if isinstance(deployment_config, SandboxDeploymentConfig):
            root = self.config.workspace_root
            if self.config.keep_workspace and root is not None:
                root.mkdir(parents=True, exist_ok=True)
            parent = root if self.config.keep_workspace else process_scratch_dir(root)
            self._host_dir = Path(tempfile.mkdtemp(prefix=f"{self.problem.id}.", dir=parent))
            repo_dir = self._host_dir / "repo"
            repo_dir.mkdir()
            env, ro_binds = self.problem.sandbox_options(self.config.working_dir)
            # Upload staging folders, too, live in this process's scratch folder, so a kill leaves nothing behind.
            scratch = process_scratch_dir(deployment_config.scratch_dir)
            deployment_config = deployment_config.model_copy(update={"scratch_dir": str(scratch)})
            self._deployment = deployment_config.get_deployment(
                workspace=repo_dir, home=self._host_dir / "home", tmp=self._host_dir / "tmp",
                mount=self.config.working_dir, env=env, ro_binds=ro_binds, fill_workspace=self._build_workspace_into,
            )
        elif isinstance(deployment_config, ContainerDeploymentConfig):
            self._deployment = deployment_config.get_deployment(self.problem, mount=self.config.working_dir)
        else:
            self._deployment = deployment_config.get_deployment(image=self.problem.image_name)
        self._run(self._deployment.start())
        self._run(self.runtime.create_session(CreateBashSessionRequest(startup_timeout=self.config.startup_timeout)))
        self.communicate(f"cd {shlex.quote(self.config.working_dir)}", check=True)
        # The sandbox's workspace is built here and a container's starting state by its deployment.
        prepared = self._host_dir is not None or isinstance(deployment_config, ContainerDeploymentConfig)
        for command in self.problem.setup_commands(self.config.working_dir, in_sandbox=prepared):
            self.communicate(command, check=True, timeout=300)
        for command in self.config.post_startup_commands:
            self.communicate(command, check=True, timeout=300)

    def _build_workspace_into(self, repo_dir: Path) -> None:
        """Build the repository beside the mounted (empty) `repo_dir`, then move its entries in (the mount is
        that folder, so it must stay; each move is one rename)."""
        assert self._host_dir is not None
        built = self._host_dir / "built"
        self.problem.build_workspace(built)
        for entry in built.iterdir():
            entry.rename(repo_dir / entry.name)
        built.rmdir()

    def communicate(self, command: str, timeout: float = 30, check: bool = False) -> str:
        """Run a command in the persistent shell; raises swerex's CommandTimeoutError when it overruns."""
        observation = self._run(self.runtime.run_in_session(BashAction(command=command, timeout=timeout, check="silent")))
        self.last_exit_code = observation.exit_code
        if check and observation.exit_code != 0:
            raise SWEEnvError(f"setup command failed ({observation.exit_code}): {command}\n{observation.output[-2000:]}")
        return observation.output

    def interrupt_session(self) -> str:
        """Stop a runaway command while keeping the shell (and its cwd and variables)."""
        observation = self._run(self.runtime.run_in_session(BashInterruptAction()))
        return observation.output

    def set_env_variables(self, variables: dict[str, str]) -> None:
        if variables:
            exports = " ".join(f"{key}={shlex.quote(value)}" for key, value in variables.items())
            self.communicate(f"export {exports}", check=True)

    def upload(self, source: Path, target: str) -> None:
        self._run(self.runtime.upload(UploadRequest(source_path=str(source), target_path=target)))

    def read_file(self, path: str) -> str:
        return self._run(self.runtime.read_file(ReadFileRequest(path=path))).content

    def write_file(self, path: str, content: str) -> None:
        self._run(self.runtime.write_file(WriteFileRequest(path=path, content=content)))

    def get_patch(self) -> str:
        """The agent's whole change (new files included) as a diff against the task's starting commit."""
        wd = shlex.quote(self.config.working_dir)
        output = self.communicate(f"cd {wd} && git add -A && git diff --cached --no-color HEAD > /root/.oec_patch.diff; echo $?", timeout=120)
        if output.strip().splitlines()[-1:] != ["0"]:
            raise SWEEnvError(f"could not compute the diff: {output[-500:]}")
        return self.read_file("/root/.oec_patch.diff")

    def close(self) -> None:
        try:
            if self._deployment is not None:
                self._run(self._deployment.stop())
        except Exception as exc:  # a dead deployment must not hide the run's result
            logger.warning("stopping the deployment failed: %s", exc)
        finally:
            self._deployment = None
            self._loop.close()
            if self._host_dir is not None and not self.config.keep_workspace:
                _REMOVER.submit(shutil.rmtree, self._host_dir, ignore_errors=True)
