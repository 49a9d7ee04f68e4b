"""Docker container next to the bubblewrap sandbox, in one run, on a real demo instance: time to a ready
environment (starting state made, server answering), bash session start, a trivial `true` in the session, a file
read, and stop.

Needs the docker images (`scripts/docker_images.sh build`). Usage:
    python scripts/bench/container_overhead.py [--starts 3] [--repeats 50] [--instance INSTANCE_ID]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table
from swerex.deployment.abstract import AbstractDeployment
from swerex.runtime.abstract import BashAction, CreateBashSessionRequest, ReadFileRequest

from sandbox_overhead import _timed_ms
from sweagent.environment.container.deployment import ContainerDeploymentConfig
from sweagent.environment.problem import InstanceProblem
from sweagent.environment.sandbox.deployment import SandboxDeploymentConfig
from sweagent.environment.swe_env import EnvironmentConfig
from sweagent.instance import TaskInstance, load_instances

INSTANCES = Path(__file__).resolve().parents[2] / "config" / "demo" / "instances.json"


def sandbox_maker(instance: TaskInstance, scratch: Path) -> Callable[[], AbstractDeployment]:
    """A fresh sandbox per start; making it builds the workspace on the host, as a rollout's start does."""
    problem = InstanceProblem(instance)
    env, ro_binds = problem.sandbox_options("/testbed")
    counter = itertools.count()

    def make() -> AbstractDeployment:
        workspace = scratch / f"start{next(counter)}"
        problem.build_workspace(workspace)
        return SandboxDeploymentConfig().get_deployment(workspace=workspace, env=env, ro_binds=ro_binds)

    return make


def measure(make: Callable[[], AbstractDeployment], starts: int, repeats: int) -> dict[str, list[float]]:
    loop = asyncio.new_event_loop()
    figures: dict[str, list[float]] = {"ready (start + starting state)": [], "bash session start": [], "stop": []}
    for index in range(starts):
        holder: list[AbstractDeployment] = []

        def start() -> None:
            holder.append(make())
            loop.run_until_complete(holder[0].start())

        figures["ready (start + starting state)"] += _timed_ms(start, 1)
        deployment = holder[0]
        figures["bash session start"] += _timed_ms(
            lambda: loop.run_until_complete(deployment.runtime.create_session(CreateBashSessionRequest())), 1)
        if index == 0:
            action, read = BashAction(command="true", timeout=10), ReadFileRequest(path="/testbed/setup.py")
            _timed_ms(lambda: loop.run_until_complete(deployment.runtime.run_in_session(action)), 5)  # warm-up
            figures["`true` in the session"] = _timed_ms(lambda: loop.run_until_complete(deployment.runtime.run_in_session(action)), repeats)
            figures["read_file"] = _timed_ms(lambda: loop.run_until_complete(deployment.runtime.read_file(read)), repeats)
        figures["stop"] += _timed_ms(lambda: loop.run_until_complete(deployment.stop()), 1)
    loop.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=3, help="environments started per kind (default 3)")
    parser.add_argument("--repeats", type=int, default=50, help="commands timed per kind (default 50)")
    parser.add_argument("--instance", help="demo instance id (default: the first)")
    args = parser.parse_args(argv)
    instances = load_instances(INSTANCES)
    instance = next((i for i in instances if i.instance_id == args.instance), instances[0]) if args.instance else instances[0]
    docker = ContainerDeploymentConfig()
    with tempfile.TemporaryDirectory(prefix="oec-bench-container-") as tmp:
        results = {
            "sandbox (bwrap)": measure(sandbox_maker(instance, Path(tmp)), args.starts, args.repeats),
            "docker": measure(lambda: docker.for_problem(InstanceProblem(instance), EnvironmentConfig(deployment=docker)), args.starts, args.repeats),
        }
    table = Table(title=f"{instance.instance_id}: median (p90) in ms")
    table.add_column("")
    for kind in results:
        table.add_column(kind, justify="right")
    for row in results["docker"]:
        cells = []
        for figures in results.values():
            samples = figures[row]
            p90 = statistics.quantiles(samples, n=10)[-1] if len(samples) > 1 else samples[0]
            cells.append(f"{statistics.median(samples):.1f} ({p90:.1f})")
        table.add_row(row, *cells)
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
