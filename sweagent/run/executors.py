"""Where batch work runs: a thread pool on one machine, or Ray tasks across a cluster.

Both take a picklable function and items, and yield results as they finish, so the batch loop does not care.
"""

from __future__ import annotations

import concurrent.futures
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sweagent.run.config_loading import ConfigError


class ExecutorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["threads", "ray"] = "threads"
    """`threads` (default; one process) or `ray` (a local Ray instance or a cluster)."""
    ray_address: str | None = None
    """Ray cluster to join (`auto` inside a cluster job); unset starts a local Ray instance."""
    ray_num_cpus_per_task: float = Field(1.0, gt=0)
    """CPUs Ray reserves for one rollout."""


def run_tasks(config: ExecutorConfig, function: Callable[[Any], Any], items: list[Any], num_workers: int,
              on_start: Callable[[Any], None] | None = None) -> Iterator[tuple[Any, Any, BaseException | None]]:
    """Yield (item, result, error) as each item finishes; an error in one item never stops the others."""
    if config.type == "ray":
        yield from _run_ray(config, function, items, num_workers, on_start)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=num_workers) as pool:
        def started(item: Any) -> Any:
            if on_start is not None:
                on_start(item)
            return function(item)

        futures = {pool.submit(started, item): item for item in items}
        try:
            for future in concurrent.futures.as_completed(futures):
                error = future.exception()
                yield futures[future], (None if error else future.result()), error
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _run_ray(config: ExecutorConfig, function: Callable[[Any], Any], items: list[Any], num_workers: int,
             on_start: Callable[[Any], None] | None) -> Iterator[tuple[Any, Any, BaseException | None]]:
    import ray

    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"address": config.ray_address} if config.ray_address else {"num_cpus": max(num_workers, 1)}
        _check_reachable(config.ray_address)
        try:
            ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False, **kwargs)
        except Exception as exc:
            where = f"join Ray at '{config.ray_address}'" if config.ray_address else "start a local Ray instance"
            raise ConfigError(f"key 'executor.ray_address': cannot {where} ({type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:300]})") from None
    remote = ray.remote(num_cpus=config.ray_num_cpus_per_task, max_retries=0)(function)
    pending_items = list(items)
    running: dict[Any, Any] = {}
    while pending_items or running:
        while pending_items and len(running) < num_workers:
            item = pending_items.pop(0)
            if on_start is not None:
                on_start(item)
            running[remote.remote(item)] = item
        done, _ = ray.wait(list(running), num_returns=1)
        for ref in done:
            item = running.pop(ref)
            try:
                yield item, ray.get(ref), None
            except Exception as exc:
                yield item, None, exc


def _check_reachable(address: str | None) -> None:
    """A `host:port` Ray address must accept connections; Ray itself would wait minutes before saying it does not."""
    match = re.fullmatch(r"(?P<host>[^:/]+):(?P<port>\d+)", address or "")
    if match is None:
        return
    try:
        socket.create_connection((match["host"], int(match["port"])), timeout=10).close()
    except OSError as exc:
        raise ConfigError(f"key 'executor.ray_address': nothing answers at '{address}' ({exc.strerror or exc})") from None
