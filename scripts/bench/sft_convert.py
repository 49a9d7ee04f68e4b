"""Benchmark of convert_to_sft: synthetic OEC trajectories (student in XML, expert with native tool calls) are
converted on one core; prints trajectories per second (target: at least 200/s for ~30-step trajectories).

    python scripts/bench/sft_convert.py [--trajectories 1000] [--steps 30] [--style xml] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from rich.progress import track

from oec.sft.pipeline import ConvertOptions, convert
from oec.sft.prompt import STYLE_PARSERS, load_student_prompt
from oec.sft.synthetic import random_oec_trajectory, write_trajectory


def _write_inputs(root: Path, trajectories: int, steps: int, seed: int) -> None:
    commands = load_student_prompt().commands
    rng = random.Random(seed)
    for index in track(range(trajectories), description="writing synthetic trajectories"):
        instance_id = f"bench__repo.{index // 2:04d}"
        trajectory = random_oec_trajectory(instance_id, rng.randint(steps - 5, steps + 5), rng.randint(0, steps - 1), rng, commands)
        write_trajectory(root / "run", root / "eval", f"{instance_id}__r{index % 2}", trajectory, resolved=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=30, help="mean steps per trajectory (uniform within +-5)")
    parser.add_argument("--style", choices=sorted(STYLE_PARSERS), default="xml")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="conversions timed; the fastest counts (others share the machine)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target is stated
    with tempfile.TemporaryDirectory(prefix="oec-bench-sft-") as tmp:
        root = Path(tmp)
        _write_inputs(root, args.trajectories, args.steps, args.seed)
        options = ConvertOptions(runs=[str(root / "run")], evals=[str(root / "eval")], output=root / "out" / "sft.jsonl",
                                 style=args.style, seed=args.seed)
        elapsed = cpu = float("inf")
        for _ in range(args.repeat):
            started, cpu_started = time.perf_counter(), time.process_time()
            summary = convert(options, show_progress=False)
            elapsed, cpu = min(elapsed, time.perf_counter() - started), min(cpu, time.process_time() - cpu_started)
        size = options.output_path("train").stat().st_size + options.output_path("validation").stat().st_size
    rows = summary["rows"]["train"] + summary["rows"]["validation"]
    turns = summary["assistant_turns"]["trained"] + summary["assistant_turns"]["masked"]
    print(f"converted {summary['trajectories']} trajectories ({turns} assistant turns) into {rows} rows "
          f"({size / 1e6:.1f} MB, style {args.style}) on one core, best of {args.repeat}: {elapsed:.2f} s wall, {cpu:.2f} s CPU")
    # On a shared machine the wall clock includes waiting for the core; the CPU figure is the core's own speed.
    print(f"{summary['trajectories'] / elapsed:.0f} trajectories/s wall, {summary['trajectories'] / cpu:.0f} trajectories/s "
          f"per CPU-second (target >= 200/s)")


if __name__ == "__main__":
    main()
