"""A `transformers.Trainer` over our checked rows whose loss covers only labelled tokens, and the run's manifest.

The rows arrive with their own `labels` (-100 outside the expert's turns). The loss is the mean negative
log-likelihood over exactly those tokens, and the LM head runs only at the positions that predict one
(`logits_to_keep`): in agent trajectories most tokens are observations and student turns, so this skips most of the
vocabulary projection, which dominates a small model's step on CPU.
TRL 1.16's `SFTTrainer` was tried first: its chunked log-prob head works at every position, about 8x the CPU time
per step on OEC rows.

`OUTPUT_DIR/` after a run: `model/` (the LoRA adapter or the fine-tuned weights, with the tokenizer),
`trainer_state.json` (the Trainer's log history), `metrics.jsonl` (one line per logging step), `manifest.json`
(config, data files with sha256, rows, trained tokens, tokens/s, losses) and, with `export.serve_name`, `gguf/`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import Trainer

from sweagent.environment.task_repos.source_cache import file_sha256
from sweagent.utils.files import write_json_atomic

from oec.sft.tokenized import IGNORE_INDEX
from oec.training.collator import RowCollator, pack_rows
from oec.training.config import TrainConfig
from oec.training.data import TokenizedRows, load_rows
from oec.training.errors import TrainingError
from oec.training.model import ModelSource, load_model_and_tokenizer, resolve_source, use_bf16

MODEL_DIR = "model"
MANIFEST = "manifest.json"
BASE_CONFIG_DIR = "base_config"
"""Next to a LoRA adapter: the base model's config.json, all that llama.cpp's adapter converter reads of the base."""


@dataclass
class PreparedRun:
    """Everything `train` needs, built once: tests drive the same trainer the CLI does."""

    config: TrainConfig
    source: ModelSource
    trainer: Any
    tokenizer: Any
    train_rows: TokenizedRows
    val_rows: TokenizedRows | None


def _callbacks(config: TrainConfig) -> list[Any]:
    from transformers import TrainerCallback

    metrics_path = config.output_dir / "metrics.jsonl"

    class MetricsLog(TrainerCallback):
        """One JSON line per logging step, appended as training goes (trainer_state.json is written only at saves)."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            with metrics_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"step": state.global_step, **(logs or {})}) + "\n")

    class RichProgress(TrainerCallback):
        """A progress bar with the latest loss, in place of the trainer's tqdm bars."""

        def __init__(self) -> None:
            self.progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn())
            self.task = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.progress.start()
            self.task = self.progress.add_task("train", total=state.max_steps, completed=state.global_step, loss="")

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.progress.update(self.task, completed=state.global_step)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                self.progress.update(self.task, loss=f"loss {logs['loss']:.4f}")

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.progress.stop()

    return [MetricsLog(), *([RichProgress()] if config.progress else [])]


class ExpertTurnTrainer(Trainer):
    """`Trainer` with the masked loss computed from the logits of trained positions only."""

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        import torch

        inputs = dict(inputs)
        labels = inputs.pop("labels")
        targets = labels[:, 1:]
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = targets != IGNORE_INDEX
        outputs = model(**inputs, logits_to_keep=keep)
        logits = outputs.logits.reshape(-1, outputs.logits.shape[-1]).float()
        loss = torch.nn.functional.cross_entropy(logits, targets[keep[:, :-1]], reduction="sum")
        # Normalised over the whole accumulated batch when the Trainer counted it (labels[..., 1:] != -100, as here).
        loss = loss / (num_items_in_batch if num_items_in_batch is not None else keep.sum().clamp(min=1))
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            loss = loss * self.accelerator.num_processes  # DDP averages gradients over ranks
        return (loss, outputs) if return_outputs else loss


def _training_arguments(config: TrainConfig) -> Any:
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(config.output_dir), per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size, gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate, lr_scheduler_type=config.lr_scheduler, warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay, max_steps=config.max_steps, num_train_epochs=config.epochs,
        activation_checkpointing=config.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        bf16=use_bf16(config), logging_steps=config.logging_steps, seed=config.seed, data_seed=config.seed,
        save_strategy="steps" if config.save_steps else "no", save_steps=config.save_steps or 500,
        report_to="none", disable_tqdm=True, eval_strategy="no", prediction_loss_only=True,
        remove_unused_columns=False, include_num_input_tokens_seen="non_padding", use_cpu=not torch.cuda.is_available(),
    )


def _peft_config(config: TrainConfig) -> Any:
    from peft import LoraConfig

    lora = config.lora
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
                      task_type="CAUSAL_LM")


def _examples(config: TrainConfig, rows: TokenizedRows) -> list[dict[str, list[int]]]:
    if config.packing:
        return pack_rows(rows.input_ids, rows.labels, config.max_seq_len)
    return [{"input_ids": ids, "labels": labels} for ids, labels in zip(rows.input_ids, rows.labels)]


def prepare(config: TrainConfig) -> PreparedRun:
    """Load the model, tokenizer and rows (all checks happen here, before any step) and build the trainer."""
    for key, paths in (("data", config.data), ("val_data", config.val_data)):
        missing = next((path for path in paths if not path.is_file()), None)
        if missing is not None:
            raise TrainingError(f"{missing}: SFT file does not exist (key '{key}')")
    source = resolve_source(config)
    model, tokenizer = load_model_and_tokenizer(config, source)
    vocab = model.get_input_embeddings().weight.shape[0]
    drop = config.too_long == "drop"
    train_rows = load_rows(config.data, tokenizer, vocab, config.max_seq_len, drop, show_progress=config.progress)
    val_rows = load_rows(config.val_data, tokenizer, vocab, config.max_seq_len, drop, show_progress=config.progress) \
        if config.val_data else None
    config.output_dir.mkdir(parents=True, exist_ok=True)
    (config.output_dir / "metrics.jsonl").unlink(missing_ok=True)
    if config.finetuning == "lora":
        from peft import get_peft_model

        try:
            model = get_peft_model(model, _peft_config(config))
        except ValueError as exc:  # e.g. target modules the model does not have
            raise TrainingError(f"key 'lora.target_modules': {str(exc).splitlines()[0]}") from None
    trainer = ExpertTurnTrainer(model=model, args=_training_arguments(config), train_dataset=_examples(config, train_rows),
                                eval_dataset=_examples(config, val_rows) if val_rows else None,
                                data_collator=RowCollator(tokenizer.pad_token_id), processing_class=tokenizer,
                                callbacks=_callbacks(config))
    return PreparedRun(config, source, trainer, tokenizer, train_rows, val_rows)


def save_base_config(model: Any, folder: Path) -> None:
    """The base model's config.json, naming its class: a config read from a GGUF has no `architectures`, which
    llama.cpp's converter needs to pick the architecture."""
    model.config.architectures = model.config.architectures or [type(model).__name__]
    model.config.save_pretrained(str(folder))


def _data_record(paths: list[Path], rows: TokenizedRows) -> dict[str, Any]:
    return {"files": [{"path": str(path.resolve()), "sha256": file_sha256(path)} for path in paths],
            "rows": len(rows.input_ids), "dropped": rows.dropped, "tokens": rows.tokens,
            "trained_tokens": rows.trained_tokens}


def train(run: PreparedRun) -> dict[str, Any]:
    """Train, save the model and tokenizer under `model/`, and write `manifest.json`; returns the manifest."""
    config, trainer = run.config, run.trainer
    started = time.monotonic()
    resume = config.resume and any(config.output_dir.glob("checkpoint-*"))
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    seconds = time.monotonic() - started
    trainer.save_model(str(config.output_dir / MODEL_DIR))
    run.tokenizer.save_pretrained(str(config.output_dir / MODEL_DIR))
    if config.finetuning == "lora":
        save_base_config(trainer.model.get_base_model(), config.output_dir / BASE_CONFIG_DIR)
    trainer.save_state()
    history = trainer.state.log_history
    losses = [entry["loss"] for entry in history if "loss" in entry]
    seen = trainer.state.num_input_tokens_seen
    manifest: dict[str, Any] = {
        "config": json.loads(config.model_dump_json()),
        "model": {"kind": run.source.kind, "path": run.source.path, "tokenizer": run.source.tokenizer,
                  "sha256": file_sha256(Path(run.source.path)) if run.source.kind == "gguf" else None,
                  "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
                  "parameters": sum(p.numel() for p in trainer.model.parameters())},
        "train_data": _data_record(config.data, run.train_rows),
        "steps": trainer.state.global_step,
        "losses": losses,
        "tokens_seen": seen,
        "train_seconds": round(seconds, 2),
        "tokens_per_second": round(seen / result.metrics["train_runtime"], 1) if seen else None,
        "output": str((config.output_dir / MODEL_DIR).resolve()),
    }
    if run.val_rows is not None:
        manifest["val_data"] = _data_record(config.val_data, run.val_rows)
        manifest["eval_loss"] = trainer.evaluate()["eval_loss"]
    write_json_atomic(config.output_dir / MANIFEST, manifest)
    return manifest

