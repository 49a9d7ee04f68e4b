"""`train_sft.sh`: a config (files + dotted overrides) in, a trained model, its manifest and optionally a served GGUF out.

Bad input ends with one line on stderr naming the file (and row) or the config key, and exit status 2.
"""

from __future__ import annotations

import sys

from rich.console import Console

from sweagent.run.config_loading import ConfigError
from sweagent.utils.log import setup_cli_output

from oec.training.config import load_train_config
from oec.training.errors import TrainingError

USAGE = """usage: train_sft.sh [--config FILE]... [--KEY VALUE]...

Train a causal LM on SFT data from convert_to_sft.sh; the loss covers only the expert's turns (labels -100 elsewhere).
Every key of oec/training/config.py::TrainConfig is an option (--lora.r 8, --export.serve_name student_r1).

  ./train_sft.sh --data sft/oec.jsonl --model tiny --output_dir runs/tiny --max_steps 8     # smoke run on CPU
  ./train_sft.sh --config config/train/local_student.yaml --data sft/oec.jsonl --output_dir runs/r1
  accelerate launch -m oec.training.cli --config config/train/qwen2.5-7b.yaml --data ... --output_dir ...   # GPUs

Outputs in OUTPUT_DIR: model/, manifest.json, metrics.jsonl, trainer_state.json (and gguf/ with export.serve_name).
"""


def main(argv: list[str] | None = None) -> int:
    setup_cli_output()
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if argv else 2
    console = Console(stderr=True)
    try:
        config = load_train_config(argv)
        from oec.training.trainer import prepare, train

        manifest = train(prepare(config))
        if config.export.serve_name:
            from oec.training.export import export_for_serving

            manifest = export_for_serving(config.output_dir, config.export.serve_name, config.export.outtype)
    except (ConfigError, TrainingError) as exc:
        print(f"train_sft: error: {exc}", file=sys.stderr)
        return 2
    losses = manifest["losses"]
    console.print(f"trained {manifest['steps']} steps on {manifest['train_data']['rows']} rows "
                  f"({manifest['train_data']['trained_tokens']} trained tokens); loss {losses[0]:.4f} -> {losses[-1]:.4f}; "
                  f"{manifest['tokens_per_second']} tokens/s; model in {manifest['output']}", markup=False)
    if "serving" in manifest:
        console.print(f"serve it: sweagent serve-local start {manifest['serving']['name']}", markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
