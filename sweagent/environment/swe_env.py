"""SWEEnv: one task's repository inside a SWE-ReX deployment (sandbox here, docker/modal on a cluster).

The agent only sees `communicate`, file operations and `get_patch`; which deployment runs the commands is the
config's business, as in SWE-ReX.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from concurrent.futures import Future
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

from sweagent.environment.deployment import DeploymentConfig, SandboxDeploymentConfig
from sweagent.environment.problem import ProblemSource
from sweagent.utils.threads import begin_fast_switching, end_fast_switching, in_thread

logger = logging.getLogger(__name__)


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
        self._starting: Future[None] | None = None
        self.last_exit_code: int | None = None

    def _run(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(coroutine)

    @property
    def runtime(self) -> Any:
        return self._deployment.runtime

    def start_in_background(self) -> None:
        """Begin `start` on a helper thread, so the caller loads or builds other things meanwhile (the sandbox and the
        workspace are mostly other processes' work); `start` then waits for it and raises what it raised."""
        begin_fast_switching()  # its many short system calls would each wait out the busy caller's interval
        self._starting = in_thread(self._start_then_end_fast_switching, name="oec-env-start")

    def _start_then_end_fast_switching(self) -> None:
        try:
            self._start()
        finally:
            end_fast_switching()

    def start(self) -> None:
        """Start the deployment the config prepares for the problem and open the shell in the working directory."""
        if self._starting is not None:
            starting, self._starting = self._starting, None
            return starting.result()
        self._start()

    def _start(self) -> None:
        self._deployment = self.config.deployment.for_problem(self.problem, self.config)
        self._run(self._deployment.start())
        self._run(self.runtime.create_session(CreateBashSessionRequest(startup_timeout=self.config.startup_timeout)))
        self.communicate(f"cd {shlex.quote(self.config.working_dir)}", check=True)
        setup = self.config.deployment.setup_commands(self.problem, self.config.working_dir)
        for command in [*setup, *self.config.post_startup_commands]:
            self.communicate(command, check=True, timeout=300)

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
        if self._starting is not None:  # a start still under way: let it finish, then stop what it started
            with contextlib.suppress(Exception):  # it was never taken: nobody else reports it
                self.start()
        try:
            if self._deployment is not None:
                self._run(self._deployment.stop())
        except Exception as exc:  # a dead deployment must not hide the run's result
            logger.warning("stopping the deployment failed: %s", exc)
        finally:
            self._deployment = None
            self._loop.close()
