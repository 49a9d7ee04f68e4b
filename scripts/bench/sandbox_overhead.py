"""Per-command overhead of the bubblewrap sandbox: a trivial `true` in the persistent session, and one-shot runs.

Usage: python scripts/bench/sandbox_overhead.py [--repeats 100]   (exit 1 if the session median exceeds 50 ms)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from swerex.runtime.abstract import BashAction, CreateBashSessionRequest

from sweagent.environment.sandbox import run_sandboxed
from sweagent.environment.sandbox_deployment import SandboxDeploymentConfig

TARGET_MS = 50.0


def _timed_ms(action: Callable[[], object], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _row(name: str, samples: list[float]) -> str:
    p90 = statistics.quantiles(samples, n=10)[-1] if len(samples) > 1 else samples[0]
    return f"{name:<32} median {statistics.median(samples):8.1f} ms   p90 {p90:8.1f} ms   (n={len(samples)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100, help="commands per measurement (default 100)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="oec-bench-") as workspace:
        deployment = SandboxDeploymentConfig().get_deployment(workspace=workspace)
        loop = asyncio.new_event_loop()
        start_ms = _timed_ms(lambda: loop.run_until_complete(deployment.start()), 1)
        session_ms = _timed_ms(
            lambda: loop.run_until_complete(deployment.runtime.create_session(CreateBashSessionRequest())), 1
        )
        action = BashAction(command="true", timeout=10)

        def run_true() -> None:
            loop.run_until_complete(deployment.runtime.run_in_session(action))

        _timed_ms(run_true, 5)  # warm-up
        command_ms = _timed_ms(run_true, args.repeats)
        loop.run_until_complete(deployment.stop())
        loop.close()
        one_shot_ms = _timed_ms(lambda: run_sandboxed("true", workspace, timeout=10), max(args.repeats // 5, 2))
    print(_row("deployment start (server up)", start_ms))
    print(_row("bash session start", session_ms))
    print(_row("`true` in the session", command_ms))
    print(_row("run_sandboxed('true') one-shot", one_shot_ms))
    median = statistics.median(command_ms)
    verdict = "ok" if median < TARGET_MS else "OVER TARGET"
    print(f"session overhead {median:.1f} ms vs target < {TARGET_MS:.0f} ms: {verdict}")
    return 0 if median < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
