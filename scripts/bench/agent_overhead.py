"""Framework overhead per agent step: step wall time minus the command's own execution time.

A replay model issues N trivial commands (`true`, then reads of a file) in the real bubblewrap sandbox; everything
that is not the command itself (query, parse, history, template rendering, trajectory write) is overhead.
Target: median below 50 ms.   Usage: python scripts/bench/agent_overhead.py [--steps 60]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from sweagent.agent.agents import DefaultAgent
from sweagent.environment.problem import LocalRepoProblem
from sweagent.run.config_loading import build_config
from sweagent.run.run_single import RunSingleConfig, dump_config, run_one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oec-bench-"))
    repo = work / "repo"
    repo.mkdir()
    (repo / "module.py").write_text("".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(200)))
    commands = ["true" if i % 2 else "head -c 2000 module.py" for i in range(args.steps)]
    outputs = [f"Step {i}.\n<function=bash><parameter=command>{c}</parameter></function>" for i, c in enumerate(commands)]
    outputs.append("<function=submit></function>")
    (work / "replay.yaml").write_text(yaml.safe_dump(outputs))
    (work / "config.yaml").write_text(yaml.safe_dump({
        "agent": {"templates": {"system_template": "{{command_docs}}\n{{format_instructions}}"},
                  "tools": {"bundles": [{"path": "tools/registry"}, {"path": "tools/edit_anthropic"}, {"path": "tools/submit"}],
                            "parse_function": {"type": "xml_function_calling"}},
                  "history_processors": [{"type": "last_n_observations", "n": 5}],
                  "model": {"type": "replay", "replay_path": str(work / "replay.yaml")}},
        "output_dir": str(work / "out")}))
    config = build_config(RunSingleConfig, [work / "config.yaml"], [])

    # One loop iteration = step + the trajectory write after it, so time from one step's start to the next.
    starts: list[float] = []
    original_step = DefaultAgent.step

    def timed_step(self: DefaultAgent, env):  # type: ignore[no-untyped-def]
        starts.append(time.perf_counter())
        return original_step(self, env)

    DefaultAgent.step = timed_step  # type: ignore[method-assign]
    trajectory = run_one(config.agent, config.env, LocalRepoProblem(repo, "benchmark", "bench"),
                         output_dir=config.output_dir, traj_id="bench", replay_config=dump_config(config))
    DefaultAgent.step = original_step  # type: ignore[method-assign]
    execution = [step.execution_time for step in trajectory.trajectory]
    iterations = [later - earlier for earlier, later in zip(starts, starts[1:])]
    overhead_ms = sorted((wall - exe) * 1000 for wall, exe in zip(iterations, execution))
    print(f"steps: {len(overhead_ms)}  exit status: {trajectory.info.exit_status}")
    print(f"command execution (sandbox round trip) median: {statistics.median(execution) * 1000:.1f} ms")
    print(f"framework overhead per step: median {statistics.median(overhead_ms):.1f} ms, "
          f"p90 {overhead_ms[int(0.9 * len(overhead_ms))]:.1f} ms, max {overhead_ms[-1]:.1f} ms  (target: median < 50 ms)")


if __name__ == "__main__":
    main()
