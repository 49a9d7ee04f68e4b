"""Measure the paper's setup on the local models: the student alone, the expert alone and OEC, graded for real.

Each group runs `sweagent run-batch --config config/local_paper_setup.yaml` on the first N demo instances (the student
never hands over; the expert acts from step 0; OEC switches at the config's drawn step), then `eval_swesmith.sh`
grades it in the sandbox. Prints one markdown row per group: resolve rate, well-formed action rate per model (answers
that became a step out of that model's calls), mean steps, wall time. Resumable: a group with a finished eval is
read back, not rerun.

    python scripts/local_results.py [--instances 6] [--workers 2] [--out /tmp/oec-local-results]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sweagent.local_models import ensure_server, stop_server
from sweagent.trajectory import iter_trajectory_files, load_trajectory
from sweagent.utils.files import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
GROUPS = {
    "OEC": [],
    "expert alone": ["--agent.model.switch.type", "step_count", "--agent.model.switch.step", "0"],
    "student alone": ["--agent.model.switch.type", "never"],
}


def _run_group(name: str, extra: list[str], out: Path, instances: int, workers: int, env: dict[str, str]) -> float:
    run_dir, eval_dir = out / name.replace(" ", "_"), out / f"{name.replace(' ', '_')}.eval"
    timing = out / f"{run_dir.name}.time.json"
    if timing.is_file() and (eval_dir / "summary.json").is_file():
        return json.loads(timing.read_text())["wall_s"]
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sweagent", "run-batch", "--config", "config/local_paper_setup.yaml",
         "--instances.slice", f":{instances}", "--num_workers", str(workers), "--output_dir", str(run_dir), *extra],
        cwd=REPO, env=env, check=True,
    )
    wall = time.perf_counter() - started
    subprocess.run([str(REPO / "eval_swesmith.sh"), str(run_dir), "--eval_dir", str(eval_dir)], cwd=REPO, env=env, check=True)
    write_json_atomic(timing, {"wall_s": wall})
    return wall


def _row(name: str, run_dir: Path, eval_dir: Path, wall: float) -> str:
    resolved = total = steps = 0
    made = {"student": 0, "expert": 0}
    calls = {"student": 0, "expert": 0}
    for path in iter_trajectory_files(run_dir):
        trajectory = load_trajectory(path)
        total += 1
        steps += len(trajectory.trajectory)
        report = eval_dir / path.parent.name / "report.json"
        if report.is_file():
            resolved += bool(json.loads(report.read_text()).get("resolved"))
        roles = trajectory.step_roles()
        for role in made:
            made[role] += roles.count(role)
            calls[role] += int(getattr(trajectory.info.oec, role).stats.get("api_calls", 0)) if trajectory.info.oec else 0
    rate = {role: f"{made[role] / calls[role]:.0%} ({made[role]}/{calls[role]})" if calls[role] else "-" for role in made}
    return (f"| {name} | {resolved}/{total} | {rate['student']} | {rate['expert']} | {steps / max(total, 1):.1f} | "
            f"{wall / 60:.1f} min |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=6, help="the first N demo instances")
    parser.add_argument("--workers", type=int, default=2, help="rollouts at once (and server slots)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/oec-local-results"))
    parser.add_argument("--groups", nargs="+", default=list(GROUPS), choices=list(GROUPS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # Servers of its own (under --out): the shared ones may be stopped by whoever started them mid-measurement.
    state_dir = args.out / "servers"
    servers = [ensure_server(name, parallel=args.workers, state_dir=state_dir) for name in ("student", "expert")]
    try:
        env = {**os.environ, "OEC_STUDENT_API_BASE": servers[0].api_base, "OEC_EXPERT_ANTHROPIC_BASE": servers[1].url}
        rows = ["| group | resolved | well-formed student | well-formed expert | mean steps | wall time |",
                "|---|---|---|---|---|---|"]
        for name in args.groups:
            wall = _run_group(name, GROUPS[name], args.out, args.instances, args.workers, env)
            slug = name.replace(" ", "_")
            rows.append(_row(name, args.out / slug, args.out / f"{slug}.eval", wall))
            print("\n".join(rows), flush=True)
    finally:
        for info in servers:
            if info.started_by_us:
                stop_server(info.name, state_dir=state_dir)
    print(f"{args.instances} demo instances, {args.workers} workers, {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
