"""How long `sweagent inspect` takes to index a run dir of N trajectories (default 1,000) of realistic size.

Each rollout has 30 steps (student, then expert) with observations of a few KB, and every step carries the
messages it was shown (`query`), as the agent records them, so a file is about 1 MB like a real long rollout. Prints
the index time and, for comparison, what loading a sample of the same files in full costs per file.
Usage: python scripts/bench/inspect_index.py [--trajectories 1000] [--steps 30]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from oec.sft.prompt import load_student_prompt
from oec.sft.synthetic import random_oec_trajectory, write_trajectory
from sweagent.inspector.index import build_index
from sweagent.trajectory import load_trajectory, traj_path


def write_run(run_dir: Path, trajectories: int, steps: int) -> int:
    """Write the run (one trajectory built, then saved under every traj id); returns the bytes of one file."""
    rng = random.Random(0)
    trajectory = random_oec_trajectory("pkg__bench-1", steps, steps // 3, rng, load_student_prompt().commands)
    for step in trajectory.trajectory:
        step.observation += "\n" + "".join(rng.choice("abcdefgh \n") for _ in range(3000))
    for index, step in enumerate(trajectory.trajectory):
        step.query = [message.model_dump() for message in trajectory.history[: 2 + 2 * index]]
    for number in range(trajectories):
        write_trajectory(run_dir, run_dir / "eval", f"pkg__bench-{number}__r0", trajectory, number % 3 == 0)
    return traj_path(run_dir, "pkg__bench-0__r0").stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trajectories", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oec-inspect-bench-") as work:
        run_dir = Path(work) / "run"
        size = write_run(run_dir, args.trajectories, args.steps)
        started = time.perf_counter()
        index = build_index([run_dir])
        elapsed = time.perf_counter() - started
        assert len(index.rollouts) == args.trajectories and not any(rollout.error for rollout in index.rollouts)
        sample = [rollout.path for rollout in index.rollouts[:20]]
        started = time.perf_counter()
        for path in sample:
            load_trajectory(path)
        full = (time.perf_counter() - started) / len(sample)
    total_mb = size * args.trajectories / 1e6
    print(f"index of {args.trajectories} trajectories ({size / 1e6:.1f} MB each, {total_mb:,.0f} MB in all, "
          f"{args.steps} steps, eval reports): {elapsed:.2f} s = {elapsed / args.trajectories * 1000:.1f} ms per trajectory")
    print(f"a full load of the same file: {full * 1000:.0f} ms (x{args.trajectories} = {full * args.trajectories:.0f} s)")


if __name__ == "__main__":
    main()
