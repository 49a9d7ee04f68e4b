"""Benchmark of the covariate-shift embedding pass: synthetic trajectories (default 1,000 × ~30 turns) are embedded
into an empty cache, then read again with the cache full; prints turns/s of the cold pass and the cached rerun time.

    python scripts/bench/embedding_throughput.py [--trajectories 1000] [--steps 30] [--device auto] [--analysis-replicates 0]

With --analysis-replicates N the whole analysis (two groups of half the trajectories, N bootstrap replicates) is
then timed on the warm cache as well.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from rich.progress import track

from covariate_shift_analysis.analysis import run_analysis
from covariate_shift_analysis.cache import EmbeddingCache
from covariate_shift_analysis.config import AnalysisConfig
from covariate_shift_analysis.embedder import TurnEmbedder, cache_identity
from covariate_shift_analysis.embedding import EmbeddingPass, embed_selection
from covariate_shift_analysis.groups import select_rollouts
from oec.sft.prompt import load_student_prompt
from oec.sft.synthetic import random_oec_trajectory, write_trajectory

GROUPS = ("first_half", "second_half")


def _write_runs(root: Path, trajectories: int, steps: int, seed: int) -> None:
    """Two run directories of the same instances, one rollout each: together `trajectories` trajectories."""
    commands = load_student_prompt().commands
    rng = random.Random(seed)
    for index in track(range(trajectories), description="writing synthetic trajectories"):
        instance_id = f"bench__repo.{index // 2:05d}"
        length = rng.randint(steps - 5, steps + 5)
        trajectory = random_oec_trajectory(instance_id, length, rng.randint(0, length - 1), rng, commands)
        write_trajectory(root / GROUPS[index % 2], None, instance_id, trajectory, resolved=True)


def _embedding_pass(config: AnalysisConfig, embedder: TurnEmbedder) -> tuple[EmbeddingPass, float, float]:
    """The pass as `run_analysis` does it; returns it with its wall-clock and CPU seconds (all threads)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    selection = select_rollouts(config)
    with EmbeddingCache(config.embedding.cache_dir, cache_identity(config.embedding)) as cache:
        result = embed_selection(
            selection, dict.fromkeys(GROUPS, "expert"), embedder, cache, config.embedding.chunk_size, progress=True
        )
    return result, time.perf_counter() - started, time.process_time() - cpu_started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=30, help="mean turns per trajectory (uniform within +-5)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--analysis-replicates", type=int, default=0, help="also time the full analysis (0 = skip)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oec-bench-embed-") as tmp:
        root = Path(tmp)
        _write_runs(root / "runs", args.trajectories, args.steps, args.seed)
        config = AnalysisConfig.model_validate({
            "groups": {name: str(root / "runs" / name) for name in GROUPS},
            "reference": GROUPS[0],
            "output_dir": str(root / "out"),
            "embedding": {"device": args.device, "batch_size": args.batch_size, "cache_dir": str(root / "cache")},
            "bootstrap": {"replicates": max(args.analysis_replicates, 1), "seed": args.seed},
        })
        embedder = TurnEmbedder(config.embedding)
        started = time.perf_counter()
        dimension = embedder.dimension  # loads the model now, so the throughput below is the steady state
        load_seconds = time.perf_counter() - started
        cold, cold_seconds, cold_cpu = _embedding_pass(config, embedder)
        warm, warm_seconds, _ = _embedding_pass(config, TurnEmbedder(config.embedding))
        print(f"model {config.embedding.model} ({dimension} dimensions) on {embedder.device}, loaded in {load_seconds:.1f} s, "
              f"batch {args.batch_size}")
        print(f"cold pass: {args.trajectories} trajectories, {cold.turns} turns ({cold.embedded} distinct texts) in "
              f"{cold_seconds:.1f} s = {cold.turns / cold_seconds:.0f} turns/s "
              f"(encoding alone {cold.embedded / cold.embed_seconds:.0f} texts/s); {cold_cpu:.0f} CPU-s = "
              f"{cold.turns / cold_cpu:.0f} turns per CPU-second (the wall figure includes waiting on a shared machine)")
        print(f"cached rerun: {warm.turns} turns, {warm.embedded} embedded, model not loaded, in {warm_seconds:.2f} s "
              f"= {warm.turns / warm_seconds:.0f} turns/s")
        if args.analysis_replicates:
            started = time.perf_counter()
            result = run_analysis(config, progress=True)
            print(f"full cached analysis ({args.analysis_replicates} replicates, "
                  f"{int(result.turns['turn'].max())} turn indices, {config.metrics.permutations} permutations): "
                  f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
