"""Deployment configs (the `env.deployment` section): where a task's commands run.

`sandbox` is bubblewrap on this machine; `docker` and `modal` are SWE-ReX's own deployments (their fields are
SWE-ReX's), for clusters, where each instance brings its image (SWE-smith's `image_name`). Every config's
`get_deployment(...)` returns a swerex `AbstractDeployment`, so the agent never knows which one it has.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from swerex.deployment import config as swerex_config
from swerex.deployment.abstract import AbstractDeployment

from sweagent.environment.sandbox_deployment import SandboxDeploymentConfig


class _InstanceImage:
    """On clusters every instance has its own image; it replaces the config's default `image`."""

    def get_deployment(self, *, image: str | None = None) -> AbstractDeployment:
        """SWE-ReX's own deployment for `image` (the instance's), or for the config's image when None."""
        config = self if image is None else self.model_copy(update={"image": image})  # type: ignore[attr-defined]
        return super(_InstanceImage, config).get_deployment()  # type: ignore[misc]


class DockerDeploymentConfig(_InstanceImage, swerex_config.DockerDeploymentConfig):
    """Run in a docker (or podman) container with SWE-ReX's server inside."""


class ModalDeploymentConfig(_InstanceImage, swerex_config.ModalDeploymentConfig):
    """Run in a modal.com sandbox with SWE-ReX's server inside."""


DeploymentConfig = Annotated[
    SandboxDeploymentConfig | DockerDeploymentConfig | ModalDeploymentConfig, Field(discriminator="type")
]
"""The `env.deployment` section; `type` picks the implementation."""

__all__ = ["DeploymentConfig", "DockerDeploymentConfig", "ModalDeploymentConfig", "SandboxDeploymentConfig"]
