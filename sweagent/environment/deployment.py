"""Deployment configs (the `env.deployment` section): where a task's commands run.

`sandbox` is bubblewrap on this machine; `docker` runs the same sandbox server in a container of the instance's
image (docker or podman, no network, `container_deployment.py`); `modal` is SWE-ReX's own deployment (its fields
are SWE-ReX's), where each instance brings its image (SWE-smith's `image_name`). Every deployment is a swerex
`AbstractDeployment`, so the agent never knows which one it has.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Discriminator, Tag
from swerex.deployment import config as swerex_config
from swerex.deployment.abstract import AbstractDeployment

from sweagent.environment.container.deployment import ContainerDeploymentConfig
from sweagent.environment.sandbox.deployment import SandboxDeploymentConfig
from sweagent.utils.unions import type_or


class ModalDeploymentConfig(swerex_config.ModalDeploymentConfig):
    """Run in a modal.com sandbox with SWE-ReX's server inside."""

    def get_deployment(self, *, image: str | None = None) -> AbstractDeployment:
        """SWE-ReX's own deployment for `image` (the instance's), or for the config's image when None."""
        config = self if image is None else self.model_copy(update={"image": image})
        return super(ModalDeploymentConfig, config).get_deployment()


DeploymentConfig = Annotated[
    Annotated[SandboxDeploymentConfig, Tag("sandbox")]
    | Annotated[ContainerDeploymentConfig, Tag("docker")]
    | Annotated[ModalDeploymentConfig, Tag("modal")],
    Discriminator(type_or("docker")),
]
"""The `env.deployment` section; `type` picks the implementation. Without `type` it is `docker`, as in SWE-agent
(`deployment: {image: python:3.11}`); without the section it is `sandbox`."""

__all__ = ["ContainerDeploymentConfig", "DeploymentConfig", "ModalDeploymentConfig", "SandboxDeploymentConfig"]
