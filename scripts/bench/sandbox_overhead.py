"""Per-command overhead of the bubblewrap sandbox: a trivial `true` in the persistent session, and one-shot runs.

Usage: python scripts/bench/sandbox_overhead.py [--repeats 100] [--files 2000] [--against GIT_REV]

The workspace holds `--files` small files, so the host's disk-limit check costs what it costs on a real repository.
`--against REV` measures the sandbox of another commit in the same run, side by side (its tree in a temporary git
worktree, imported through a throwaway venv that sees this venv's packages), then prints both. Exit 1 if the
session median of this tree exceeds 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from swerex.runtime.abstract import BashAction, CreateBashSessionRequest

from sweagent.environment.sandbox.bwrap import run_sandboxed
from sweagent.environment.sandbox.deployment import SandboxDeploymentConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from other_commit import other_commit_python  # noqa: E402

TARGET_MS = 50.0
REPO = Path(__file__).resolve().parents[2]


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


def _workspace(path: Path, files: int) -> None:
    for index in range(files):
        folder = path / f"pkg{index % 50}"
        folder.mkdir(exist_ok=True)
        (folder / f"module{index}.py").write_text(f"VALUE = {index}\n" * 20)


def measure(repeats: int, files: int, ro_binds: tuple[str, ...] = ()) -> float:
    """Print this interpreter's sandbox figures; returns the session median in ms. `ro_binds`: host folders the
    server's imports need besides its own venv (another commit's run reaches this venv's packages through a .pth)."""
    with tempfile.TemporaryDirectory(prefix="oec-bench-") as workspace:
        _workspace(Path(workspace), files)
        deployment = SandboxDeploymentConfig(ro_binds=list(ro_binds)).get_deployment(workspace=workspace)
        loop = asyncio.new_event_loop()
        start_ms = _timed_ms(lambda: loop.run_until_complete(deployment.start()), 1)
        session_ms = _timed_ms(
            lambda: loop.run_until_complete(deployment.runtime.create_session(CreateBashSessionRequest())), 1
        )
        action = BashAction(command="true", timeout=10)

        def run_true() -> None:
            loop.run_until_complete(deployment.runtime.run_in_session(action))

        _timed_ms(run_true, 5)  # warm-up
        command_ms = _timed_ms(run_true, repeats)
        loop.run_until_complete(deployment.stop())
        loop.close()
        one_shot_ms = _timed_ms(lambda: run_sandboxed("true", workspace, timeout=10), max(repeats // 5, 2))
    print(_row("deployment start (server up)", start_ms))
    print(_row("bash session start", session_ms))
    print(_row("`true` in the session", command_ms))
    print(_row("run_sandboxed('true') one-shot", one_shot_ms))
    return statistics.median(command_ms)


def measure_other_commit(rev: str, repeats: int, files: int) -> None:
    """Run `measure` on the tree of `rev` (see other_commit.py)."""
    with other_commit_python(rev) as (python, packages):
        code = (f"import sys; sys.path.insert(0, {str(REPO / 'scripts' / 'bench')!r}); import sandbox_overhead as b; "
                f"b.measure({repeats}, {files}, ({packages!r},))")
        subprocess.run([python, "-c", code], check=True, cwd=tempfile.gettempdir(), env={**os.environ, "PYTHONPATH": ""})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100, help="commands per measurement (default 100)")
    parser.add_argument("--files", type=int, default=2000, help="small files in the workspace (default 2000)")
    parser.add_argument("--against", metavar="GIT_REV", help="also measure this commit's sandbox, in the same run")
    args = parser.parse_args(argv)
    if args.against:
        print(f"== {args.against}")
        measure_other_commit(args.against, args.repeats, args.files)
        print("== this tree")
    median = measure(args.repeats, args.files)
    verdict = "ok" if median < TARGET_MS else "OVER TARGET"
    print(f"session overhead {median:.1f} ms vs target < {TARGET_MS:.0f} ms: {verdict}")
    return 0 if median < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
