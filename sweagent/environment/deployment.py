"""Deployment configs (the `env.deployment` section): where a task's commands run.

`sandbox` is bubblewrap on this machine; `docker` runs the same sandbox server in a container of the instance's
image (docker or podman, no network, `container/deployment.py`); `modal` is SWE-ReX's own deployment (its fields
are SWE-ReX's), where each instance brings its image (SWE-smith's `image_name`). Every deployment is a swerex
`AbstractDeployment`, so the agent never knows which one it has.

Nothing else asks which one it is: each config answers four questions itself, so a new deployment is a new config.
- `for_problem(problem, env)`: the deployment (not started) for a problem, with what it needs prepared (the
  sandbox's host workspace, built while its server starts; the container's starting state, made at start);
- `setup_commands(problem, working_dir)`: shell commands that finish the starting state once the shell is up;
- `tool_python()`: the interpreter for tool helpers when OEC's own environment is visible, else None (their
  packages are then uploaded, `sweagent/tools/tool_packages.py`);
- `check_instances(instances, where)`: what a batch can check before any rollout starts (one line, an `OECError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

from pydantic import Discriminator, Tag
from swerex.deployment import config as swerex_config
from swerex.deployment.abstract import AbstractDeployment

from sweagent.environment.container.deployment import ContainerDeploymentConfig
from sweagent.environment.problem import InstanceProblem, ProblemSource
from sweagent.environment.sandbox.deployment import SandboxDeploymentConfig
from sweagent.instance import TaskInstance
from sweagent.utils.unions import type_or

if TYPE_CHECKING:
    from sweagent.environment.swe_env import EnvironmentConfig


class ModalDeploymentConfig(swerex_config.ModalDeploymentConfig):
    """Run in a modal.com sandbox with SWE-ReX's server inside."""

    def for_problem(self, problem: ProblemSource, env: EnvironmentConfig) -> AbstractDeployment:
        """SWE-ReX's own deployment for the problem's image, or for the config's image when it has none."""
        config = self if problem.image_name is None else self.model_copy(update={"image": problem.image_name})
        return super(ModalDeploymentConfig, config).get_deployment()

    def setup_commands(self, problem: ProblemSource, working_dir: str) -> list[str]:
        """SWE-smith images hold every instance of a repository as a branch named after the instance."""
        return [f"git -C {working_dir} checkout -q {problem.id}"] if isinstance(problem, InstanceProblem) else []

    def tool_python(self) -> str | None:
        """None: the image's python3 runs the helpers, with their packages uploaded."""
        return None

    def check_instances(self, instances: Sequence[TaskInstance], where: str) -> None:
        """Nothing to check before the images start remotely."""


DeploymentConfig = Annotated[
    Annotated[SandboxDeploymentConfig, Tag("sandbox")]
    | Annotated[ContainerDeploymentConfig, Tag("docker")]
    | Annotated[ModalDeploymentConfig, Tag("modal")],
    Discriminator(type_or("docker")),
]
"""The `env.deployment` section; `type` picks the implementation. Without `type` it is `docker`, as in SWE-agent
(`deployment: {image: python:3.11}`); without the section it is `sandbox`."""

__all__ = ["ContainerDeploymentConfig", "DeploymentConfig", "ModalDeploymentConfig", "SandboxDeploymentConfig"]
