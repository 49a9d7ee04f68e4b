"""`scripts/dagger_loop.sh`: R rounds of generate (student_r → expert) → evaluate → SFT → train → serve student_{r+1}.

Every stage runs the same command a user would (`sweagent run-batch`, `eval_swesmith.sh`, `convert_to_sft.sh`,
`train_sft.sh`, `analyze_covariate_shift.sh`) and lands in `<loop_dir>/round_<r>/`:

    runs/oec/  runs/student/   the OEC rollouts and the student alone (never switching), each with eval/
    sft/oec.jsonl              this round's data (all rounds so far with `data: accumulate`)
    train/                     train_sft.sh's output; it registers student_{r+1} for `sweagent serve-local`
    shift/                     covariate shift of the student-alone rollouts to the expert reference
    manifest.json              per stage: done or not, wall seconds, what it produced

`<loop_dir>/reference/expert` (the expert alone, run once) is the covariate-shift reference. A stage is marked done
in the manifest only after it finished, so a killed loop reruns the stage it was in (run-batch and the evaluation
resume their own partial work) and skips the rest. `<loop_dir>/table.md` / `table.json` hold one row per round.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

from sweagent.local_models.server import ensure_server
from sweagent.run.config_loading import build_config, parse_cli, resolve_config_path
from sweagent.trajectory import load_trajectory
from sweagent.utils.files import write_json_atomic, write_text_atomic

from oec.training.errors import TrainingError
from sweagent import REPO_ROOT

REPO = REPO_ROOT
STAGES = ("generate", "student_alone", "evaluate", "sft", "train", "shift")
BASE_STUDENT = "student"


class DaggerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loop_dir: Path
    rounds: int = Field(2, ge=1)
    generate_config: list[Path] = Field(default_factory=lambda: [Path("config/local_oracle_demo.yaml")])
    """run-batch config(s) of a switching model whose `models.0` is the student (it is pointed at student_r)."""
    generate_overrides: dict[str, Any] = Field(default_factory=dict)
    """Dotted run-batch overrides for every generation, e.g. the oracle's `agent.model.models.1.model.instances_path`."""
    instances: Path = Path("config/demo/instances.json")
    instances_slice: str = ":2"
    rollouts_per_instance: int = Field(1, ge=1)
    student_alone_call_limit: int = Field(6, ge=1)
    """Call limit of the student-alone group, whose resolve and well-formed rates fill the table."""
    num_workers: int = Field(2, ge=1)
    data: Literal["accumulate", "replace"] = "accumulate"
    """accumulate: train on the SFT rows of every round so far (DAgger's aggregation); replace: this round's only."""
    train_config: list[Path] = Field(default_factory=lambda: [Path("config/train/local_student.yaml")])
    train_overrides: dict[str, Any] = Field(default_factory=dict)
    student_prefix: str = Field("dagger", pattern=r"^[a-z][a-z0-9_]{0,30}$")
    """Trained students are served as `<prefix>_r1`, `<prefix>_r2`, ..."""
    shift_replicates: int = Field(100, ge=10)


def load_dagger_config(argv: list[str]) -> DaggerConfig:
    files, overrides = parse_cli(argv)
    return build_config(DaggerConfig, files, overrides)


def student_name(config: DaggerConfig, round_index: int) -> str:
    return BASE_STUDENT if round_index == 0 else f"{config.student_prefix}_r{round_index}"


EXPERT_ALONE = ["--agent.model.switch.type", "step_count", "--agent.model.switch.step", "0"]
"""run-batch overrides for the reference group: the expert acts from step 0."""
STUDENT_ALONE = ["--agent.model.switch.type", "never"]
"""run-batch overrides for the student-alone group: no hand-over, not even when stuck."""


def _flags(overrides: dict[str, Any]) -> list[str]:
    return [part for key, value in overrides.items() for part in (f"--{key}", json.dumps(value) if isinstance(value, (list, dict, bool)) else str(value))]


def _run(command: list[str], log: Path, allowed: tuple[int, ...] = (0,)) -> None:
    """One stage command, its output appended to the round's log; a failure names the command and the log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO).returncode
    if code not in allowed:
        raise TrainingError(f"{command[0]} {command[1] if len(command) > 1 else ''} exited with {code}; see {log}")


class Round:
    """One round's folder, manifest and stages."""

    def __init__(self, config: DaggerConfig, index: int, console: Console) -> None:
        self.config, self.index, self.console = config, index, console
        self.dir = config.loop_dir / f"round_{index}"
        self.manifest_path = self.dir / "manifest.json"
        self.manifest: dict[str, Any] = json.loads(self.manifest_path.read_text()) if self.manifest_path.is_file() else {
            "round": index, "student": student_name(config, index), "next_student": student_name(config, index + 1),
            "stages": {}}
        self.log = self.dir / "loop.log"

    def run_stage(self, name: str, action: Any) -> None:
        record = self.manifest["stages"].get(name, {})
        if record.get("done"):
            self.console.print(f"round {self.index}: {name} done earlier ({record['seconds']:.0f} s)", markup=False)
            return
        self.console.print(f"round {self.index}: {name} ...", markup=False)
        started = time.monotonic()
        outputs = action() or {}
        self.manifest["stages"][name] = {"done": True, "seconds": round(time.monotonic() - started, 1), **outputs}
        write_json_atomic(self.manifest_path, self.manifest)

    def batch(self, group: str, api_base: str, extra: list[str]) -> dict[str, Any]:
        return run_batch(self.config, self.dir / "runs" / group, self.manifest["student"], api_base, extra, self.log)


def run_batch(config: DaggerConfig, output_dir: Path, student: str, api_base: str, extra: list[str], log: Path) -> dict[str, Any]:
    command = ["sweagent", "run-batch", *[part for path in config.generate_config for part in ("--config", str(path))],
               "--instances.path", str(config.instances), "--instances.slice", config.instances_slice,
               "--num_workers", str(config.num_workers), "--output_dir", str(output_dir),
               "--agent.model.models.0.model.name", f"openai/{student}", "--agent.model.models.0.model.api_base", api_base,
               *_flags(config.generate_overrides), *extra]
    _run(command, log)
    return {"run_dir": str(output_dir)}


def evaluate(config: DaggerConfig, run_dir: Path, log: Path) -> dict[str, Any]:
    # eval_swesmith.sh exits 1 when some predictions are unresolved: that is an outcome, not a failure.
    _run([str(REPO / "eval_swesmith.sh"), str(run_dir), "--instances", str(config.instances),
          "--workers", str(config.num_workers)], log, allowed=(0, 1))
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    return {"resolved": summary["resolved"], "total": summary["total"]}


def well_formed_rate(run_dir: Path) -> float | None:
    """Student steps with a parsed action per student model call: re-queries after malformed output lower it."""
    steps = calls = 0
    for path in sorted(run_dir.glob("*/*.traj")):
        trajectory = load_trajectory(path)
        steps += sum(step.model_role in (None, "student") and bool(step.action) for step in trajectory.trajectory)
        oec = trajectory.info.oec
        stats = oec.student.stats if oec is not None else trajectory.info.model_stats
        calls += int(stats.get("api_calls", 0))
    return round(steps / calls, 3) if calls else None


def shift_summary(shift_dir: Path, group: str) -> float | None:
    """The analysis module's trajectory-level Fréchet distance of `group` to the reference."""
    table = shift_dir / "trajectory_level.csv"
    if not table.is_file():
        return None
    for row in csv.DictReader(table.open()):
        if row["metric"] == "frechet" and row["group"] == group and row["estimate_all_rollouts"]:
            return round(float(row["estimate_all_rollouts"]), 4)
    return None


def _round_stages(round_: Round) -> None:
    config, index, log = round_.config, round_.index, round_.log
    info = ensure_server(round_.manifest["student"])
    round_.manifest["api_base"] = info.api_base

    def sft() -> dict[str, Any]:
        rounds = range(index + 1) if config.data == "accumulate" else [index]
        runs = [config.loop_dir / f"round_{r}" / "runs" / "oec" for r in rounds]
        output = round_.dir / "sft" / "oec.jsonl"
        _run([str(REPO / "convert_to_sft.sh"), "--runs", *map(str, runs), "--evals", *(str(run / "eval") for run in runs),
              "--instances", str(config.instances), "--output", str(output), "--val_fraction", "0", "--quiet"], log)
        summary = json.loads(output.with_suffix(".summary.json").read_text())
        return {"rows": summary["rows"]["train"], "file": str(output)}

    def train() -> dict[str, Any]:
        if round_.manifest["stages"]["sft"]["rows"] == 0:
            raise TrainingError(f"round {index}: no resolved OEC trajectory to train on ({round_.dir / 'sft'})")
        out = round_.dir / "train"
        _run([str(REPO / "train_sft.sh"), *[part for path in config.train_config for part in ("--config", str(path))],
              "--data", round_.manifest["stages"]["sft"]["file"], "--output_dir", str(out),
              "--export.serve_name", round_.manifest["next_student"], "--progress", "false",
              *_flags(config.train_overrides)], log)
        manifest = json.loads((out / "manifest.json").read_text())
        return {"trained_tokens": manifest["train_data"]["trained_tokens"], "losses": manifest["losses"],
                "tokens_per_second": manifest["tokens_per_second"], "serving": manifest["serving"]}

    def shift() -> dict[str, Any]:
        out = round_.dir / "shift"
        _run([str(REPO / "analyze_covariate_shift.sh"), "--group", f"expert={config.loop_dir / 'reference' / 'expert'}",
              "--group", f"student={round_.dir / 'runs' / 'student'}", "--reference", "expert", "--output-dir", str(out),
              "--bootstrap.replicates", str(config.shift_replicates), "--metrics.min_samples_per_turn", "2",
              "--no-progress"], log)
        return {"frechet_to_expert": shift_summary(out, "student")}

    def evaluate_both() -> dict[str, Any]:
        return {group: evaluate(config, round_.dir / "runs" / group, log) for group in ("oec", "student")}

    round_.run_stage("generate", lambda: round_.batch("oec", info.api_base,
                                                      ["--rollouts_per_instance", str(config.rollouts_per_instance)]))
    round_.run_stage("student_alone", lambda: round_.batch("student", info.api_base, [
        *STUDENT_ALONE, "--agent.model.models.0.model.per_instance_call_limit", str(config.student_alone_call_limit)]))
    round_.run_stage("evaluate", evaluate_both)
    round_.run_stage("sft", sft)
    round_.run_stage("train", train)
    round_.run_stage("shift", shift)


def table_row(round_: Round) -> dict[str, Any]:
    stages = round_.manifest["stages"]
    alone = stages["evaluate"]["student"]
    return {
        "round": round_.index, "student": round_.manifest["student"],
        "student_resolved": f"{alone['resolved']}/{alone['total']}",
        "well_formed": well_formed_rate(round_.dir / "runs" / "student"),
        "frechet_to_expert": stages["shift"]["frechet_to_expert"],
        "oec_resolved": f"{stages['evaluate']['oec']['resolved']}/{stages['evaluate']['oec']['total']}",
        "sft_rows": stages["sft"]["rows"], "trained_tokens": stages["train"]["trained_tokens"],
        "next_student": round_.manifest["next_student"],
        **{f"{name}_s": stages[name]["seconds"] for name in STAGES},
    }


def write_table(config: DaggerConfig, rows: list[dict[str, Any]], console: Console) -> None:
    write_json_atomic(config.loop_dir / "table.json", rows)
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[column]) for column in columns) + " |" for row in rows]
    write_text_atomic(config.loop_dir / "table.md", "\n".join(lines) + "\n")
    shown = [column for column in columns if not column.endswith("_s")]
    table = Table(title=f"DAgger loop: {config.loop_dir} (stage times in table.md)")
    for column in shown:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[column]) for column in shown))
    console.print(table)


def run_loop(config: DaggerConfig, console: Console) -> list[dict[str, Any]]:
    config.loop_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(config.loop_dir / "config.json", json.loads(config.model_dump_json()))
    reference = config.loop_dir / "reference" / "expert"
    if not (config.loop_dir / "reference" / "done").is_file():
        console.print("reference: the expert alone ...", markup=False)
        base = ensure_server(BASE_STUDENT)  # never asked (the expert acts from step 0), but the config names it
        run_batch(config, reference, BASE_STUDENT, base.api_base, EXPERT_ALONE, config.loop_dir / "reference" / "loop.log")
        write_text_atomic(config.loop_dir / "reference" / "done", "")
    rows = []
    for index in range(config.rounds):
        round_ = Round(config, index, console)
        _round_stages(round_)
        rows.append(table_row(round_))
        write_table(config, rows, console)
    final = ensure_server(student_name(config, config.rounds))
    console.print(f"student_{config.rounds} ({final.name}) is served at {final.api_base}", markup=False)
    return rows


def _resolved_paths(config: DaggerConfig) -> DaggerConfig:
    """Config paths work from any directory, like every OEC config (subprocesses run in the repository)."""
    return config.model_copy(update={
        "loop_dir": config.loop_dir.resolve(), "instances": resolve_config_path(config.instances).resolve(),
        "generate_config": [resolve_config_path(p).resolve() for p in config.generate_config],
        "train_config": [resolve_config_path(p).resolve() for p in config.train_config]})


def main(argv: list[str] | None = None) -> int:
    from sweagent.run.config_loading import ConfigError
    from sweagent.local_models.catalog import LocalModelError
    from sweagent.utils.log import setup_cli_output

    setup_cli_output()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]) or not argv:
        print(__doc__.split("\n\n")[0] + "\n\nusage: scripts/dagger_loop.sh --loop_dir DIR [--config FILE] [--KEY VALUE]..."
              "\n(keys: oec/training/dagger.py::DaggerConfig; config/train/dagger_demo.yaml is the laptop demo)")
        return 0 if argv else 2
    console = Console(stderr=True)
    # SIGTERM unwinds like Ctrl-C: subprocess.run then kills the stage command instead of leaving it running.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        config = _resolved_paths(load_dagger_config(argv))
        run_loop(config, console)
    except (ConfigError, TrainingError, LocalModelError) as exc:
        print(f"dagger_loop: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
