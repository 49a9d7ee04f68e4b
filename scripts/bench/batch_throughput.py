"""run-batch throughput (instances/min) with 1 and 2 workers, replay model, real demo instances, side by side.

Each rollout builds its workspace from the cached sdist, starts a sandbox, installs the tools and runs a few
commands, so this measures the framework, not a model.   Usage: python scripts/bench/batch_throughput.py [--instances 6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console

from sweagent.run.config_loading import build_config
from sweagent.run.run_batch import RunBatchConfig, run_batch

REPO = Path(__file__).resolve().parents[2]
STEPS = ["<function=bash><parameter=command>ls</parameter></function>",
         "<function=bash><parameter=command>grep -rn def . | head -5</parameter></function>",
         "<function=bash><parameter=command>echo x >> NOTES.txt</parameter></function>",
         "<function=submit></function>"]


def timed_batch(work: Path, workers: int, instances: int) -> float:
    work.mkdir(parents=True, exist_ok=True)
    replay = work / "replay.yaml"
    replay.write_text(yaml.safe_dump(STEPS))
    config_path = work / f"batch{workers}.yaml"
    config_path.write_text(yaml.safe_dump({
        "agent": {"templates": {"system_template": "{{command_docs}}"},
                  "tools": {"bundles": [{"path": "tools/registry"}, {"path": "tools/edit_anthropic"}, {"path": "tools/submit"}],
                            "parse_function": {"type": "xml_function_calling"}},
                  "model": {"type": "replay", "replay_path": str(replay)}},
        "instances": {"path": str(REPO / "config/demo/instances.json"), "slice": f":{instances}"},
        "output_dir": str(work / f"run{workers}"), "num_workers": workers}))
    config = build_config(RunBatchConfig, [config_path], [])
    started = time.perf_counter()
    counts = run_batch(config, Console(quiet=True))
    elapsed = time.perf_counter() - started
    assert counts.get("submitted") == instances, counts
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=6)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oec-batch-bench-"))
    timed_batch(work / "warmup", 1, 1)  # builds the sdist cache and the test venv once, outside the timing
    results = {workers: timed_batch(work, workers, args.instances) for workers in (1, 2)}
    for workers, elapsed in results.items():
        print(f"{workers} worker(s): {args.instances} instances in {elapsed:.1f} s = {args.instances / elapsed * 60:.1f} instances/min")
    print(f"speed-up 2 vs 1 workers: {results[1] / results[2]:.2f}x")


if __name__ == "__main__":
    main()
