"""Batch bookkeeping at N finished rollouts (default 1,000): the previous way, which re-read every `.traj` after each
rollout to rewrite `run_batch_exit_statuses.yaml` and `run_batch_role_stats.yaml`, beside today's `BatchRecord`
(outlines read once at start, an in-memory update per rollout, the files rewritten at most every WRITE_INTERVAL_S),
in one run.

Each rollout has `--steps` steps (student, then expert), observations of a few KB and the `query` copies of the
history the agent records, plus a `.pred`. Prints the time of one update at N finished, the whole batch's bookkeeping
(the previous way's total is its update time summed over n = 1..N, which grows linearly in n; today's is measured
twice: as run-batch does it, and writing the files after every rollout as the worst case of rollouts that each take
longer than the interval), the start-up read of a resumed run, and checks that both ways write the same files.
Usage: python scripts/bench/batch_bookkeeping.py [--rollouts 1000] [--steps 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import inspect_index  # noqa: E402  (the same realistic run dir as the inspector's benchmark)

from sweagent.agent.switching.accounting import ROLE_STATS_FILE, write_role_stats
from sweagent.predictions import Prediction, write_prediction
from sweagent.run.batch_record import EXIT_STATUS_FILE, WRITE_INTERVAL_S, BatchRecord, outline_of
from sweagent.run.run_single import is_infrastructure_failure
from sweagent.trajectory import Trajectory, TrajectoryError, iter_trajectory_files, load_trajectory, traj_path
from sweagent.utils.files import write_text_atomic


def previous_write_exit_statuses(output_dir: Path) -> None:
    """What run-batch did after every rollout until this change: load every finished trajectory in full."""
    by_status: dict[str, list[str]] = {}
    finished = []
    for path in iter_trajectory_files(output_dir):
        if not path.with_suffix(".pred").is_file():
            continue
        try:
            trajectory = load_trajectory(path)
        except TrajectoryError:
            continue
        if not is_infrastructure_failure(trajectory) and trajectory.info.exit_status:
            by_status.setdefault(trajectory.info.exit_status, []).append(path.parent.name)
            finished.append(trajectory)
    write_text_atomic(output_dir / EXIT_STATUS_FILE, yaml.safe_dump({"instances_by_exit_status": by_status}, sort_keys=True))
    write_role_stats(output_dir, finished)


def write_run(run_dir: Path, rollouts: int, steps: int) -> tuple[list[str], Trajectory, int]:
    """inspect_index.py's run dir (one realistic trajectory saved under every traj id) plus a .pred per rollout;
    the traj ids, the trajectory and the bytes of one file."""
    size = inspect_index.write_run(run_dir, rollouts, steps)
    ids = [path.parent.name for path in iter_trajectory_files(run_dir)]
    for traj_id in ids:
        write_prediction(traj_path(run_dir, traj_id).with_suffix(".pred"), Prediction(
            instance_id=traj_id.removesuffix("__r0"), model_name_or_path="oracle", model_patch="", traj_id=traj_id))
    return ids, load_trajectory(traj_path(run_dir, ids[0])), size


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    n = args.rollouts
    with tempfile.TemporaryDirectory(prefix="oec-bookkeeping-bench-") as work:
        run_dir = Path(work) / "run"
        ids, trajectory, size = write_run(run_dir, n, args.steps)
        previous = timed(previous_write_exit_statuses, run_dir)
        files = {name: (run_dir / name).read_text() for name in (EXIT_STATUS_FILE, ROLE_STATS_FILE)}

        started = time.perf_counter()
        record = BatchRecord.load(run_dir)
        startup = time.perf_counter() - started
        assert len(record.finished) == n

        record = BatchRecord(run_dir)  # a fresh batch: each result arrives in memory and the files are rewritten
        outlines = {traj_id: outline_of(trajectory) for traj_id in ids}
        started = time.perf_counter()
        for traj_id in ids:
            record.add(traj_id, outlines[traj_id])
            record.write_soon()
        record.write()
        batch_total = time.perf_counter() - started
        record = BatchRecord(run_dir)
        started = time.perf_counter()
        for traj_id in ids:
            record.add(traj_id, outlines[traj_id])
            record.write()
        every_rollout = time.perf_counter() - started
        one_update = timed(lambda: (record.add(ids[-1], outlines[ids[-1]]), record.write()))
        same = all((run_dir / name).read_text() == text for name, text in files.items())
    print(f"{n} finished rollouts ({size / 1e6:.2f} MB .traj each, {args.steps} steps)")
    print(f"one update at {n} finished:   previous {previous * 1000:9.1f} ms   now {one_update * 1000:7.2f} ms   "
          f"(x{previous / one_update:,.0f})")
    print(f"whole batch of {n} rollouts:  previous ~{previous * (n + 1) / 2:8.0f} s    now {batch_total:7.2f} s   "
          f"(previous: its update time summed over n = 1..{n})")
    print(f"today's, writing the files after every rollout (rollouts slower than {WRITE_INTERVAL_S:.0f} s each): "
          f"{every_rollout:.2f} s")
    print(f"start-up read of a resumed run with {n} finished (outlines, once): {startup:.2f} s")
    print(f"both write the same {EXIT_STATUS_FILE} and {ROLE_STATS_FILE}: {same}")


if __name__ == "__main__":
    main()
