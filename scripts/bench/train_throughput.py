"""Training throughput on this machine: tokens/s of train_sft's trainer for the tiny model and the local 0.5B student.

Rows are real SFT rows (synthetic OEC trajectories through convert_to_sft, about 2k tokens each); each model runs
a few LoRA steps after one warm-up step, and the figure is input tokens per second of training time (forward,
backward and optimizer step). The 0.5B is dequantized from its GGUF first (not timed).
Usage: python scripts/bench/train_throughput.py [--models tiny student] [--steps 3]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from transformers import TrainerCallback

from oec.sft.cli import main as convert_main
from oec.sft.prompt import load_student_prompt
from oec.sft.synthetic import random_oec_trajectory, write_trajectory
from oec.training.config import LoraSettings, TrainConfig
from oec.training.trainer import prepare


def _sft_rows(work: Path, count: int) -> Path:
    commands, rng = load_student_prompt().commands, random.Random(0)
    for index in range(count):
        traj_id = f"bench__row-{index}"
        write_trajectory(work / "run", work / "eval", traj_id, random_oec_trajectory(traj_id, 8, 3, rng, commands), True)
    output = work / "sft" / "rows.jsonl"
    convert_main(["--runs", str(work / "run"), "--evals", str(work / "eval"), "--output", str(output), "--quiet",
                  "--val_fraction", "0"])
    return output


class StepTimer(TrainerCallback):
    """Wall time and input tokens of every optimizer step."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.tokens: list[int] = []
        self._started, self._seen = 0.0, 0

    def on_step_begin(self, args: object, state: object, control: object, **kwargs: object) -> None:
        self._started, self._seen = time.perf_counter(), state.num_input_tokens_seen

    def on_step_end(self, args: object, state: object, control: object, **kwargs: object) -> None:
        self.seconds.append(time.perf_counter() - self._started)
        self.tokens.append(state.num_input_tokens_seen - self._seen)


def measure(model: str, data: Path, work: Path, steps: int) -> dict[str, float]:
    config = TrainConfig(data=[data], output_dir=work / model, model=model, max_steps=steps + 1, progress=False,
                         lora=LoraSettings(r=8, alpha=16, dropout=0.0, target_modules=["q_proj", "v_proj"]),
                         lr_scheduler="constant", precision="fp32")
    run = prepare(config)
    trainer = run.trainer
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    times, tokens = timer.seconds, timer.tokens
    measured_tokens, measured_seconds = sum(tokens[1:]), sum(times[1:])  # step 1 warms up
    return {"steps": len(times) - 1, "tokens_per_step": measured_tokens / max(len(times) - 1, 1),
            "seconds_per_step": measured_seconds / max(len(times) - 1, 1), "tokens_per_second": measured_tokens / measured_seconds,
            "trainable": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
            "parameters": sum(p.numel() for p in trainer.model.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny", "student"], choices=["tiny", "student"])
    parser.add_argument("--steps", type=int, default=3, help="measured steps per model, after one warm-up step")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oec-train-bench-"))
    data = _sft_rows(work, args.steps + 1)
    table = Table(title="train_sft throughput (CPU, LoRA r=8 on q/v, batch 1)")
    for column in ("model", "parameters", "trainable", "tokens/step", "s/step", "tokens/s"):
        table.add_column(column, justify="right")
    for model in args.models:
        result = measure(model, data, work, args.steps)
        table.add_row(model, f"{result['parameters'] / 1e6:.1f}M", f"{result['trainable'] / 1e6:.2f}M",
                      f"{result['tokens_per_step']:.0f}", f"{result['seconds_per_step']:.2f}", f"{result['tokens_per_second']:.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
