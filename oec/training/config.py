"""`train_sft.sh`'s config: a pydantic model loaded like every other OEC config (YAML files merged, dotted overrides).

    ./train_sft.sh --config config/train/qwen2.5-7b.yaml --data sft/oec.jsonl --output_dir runs/train --max_steps 100

The class defaults are a CPU smoke setup; `config/train/*.yaml` hold the local 0.5B round and the cluster setups.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sweagent.run.config_loading import build_config, parse_cli

TINY = "tiny"
"""`model: tiny`: a few-layer, randomly initialised Qwen2 with the real Qwen2.5 tokenizer (smoke runs, tests)."""
LOCAL_STUDENT = "student"
"""`model: student`: the local Qwen2.5-Coder-0.5B-Instruct, dequantized from its pinned GGUF."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TinyModel(_Strict):
    """Shape of `model: tiny`; small enough that a step on CPU takes well under a second."""

    layers: int = Field(2, ge=1)
    hidden_size: int = Field(64, ge=8)
    heads: int = Field(4, ge=1)
    kv_heads: int = Field(2, ge=1)
    intermediate_size: int = Field(128, ge=8)

    @model_validator(mode="after")
    def _divisible(self) -> TinyModel:
        if self.hidden_size % self.heads or self.heads % self.kv_heads:
            raise ValueError("hidden_size must be a multiple of heads, and heads a multiple of kv_heads")
        return self


class LoraSettings(_Strict):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    """Module names peft wraps; llama.cpp's LoRA converter handles all of Qwen2's projections."""


class ExportSettings(_Strict):
    """After training, convert the result to GGUF and register it so `sweagent serve-local start NAME` serves it."""

    serve_name: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{0,39}$")
    """Name of the served model (also its file names and `OEC_<NAME>_API_BASE`); None: no export."""
    outtype: Literal["f32", "f16", "bf16", "q8_0"] = "f16"
    """Tensor type the converter writes (the LoRA adapter, or the merged model after full fine-tuning)."""


class TrainConfig(_Strict):
    data: list[Path] = Field(min_length=1)
    """SFT files from `convert_to_sft.sh`: chat JSONL (tokenized here with the chat template) or its Parquet export."""
    val_data: list[Path] = Field(default_factory=list)
    """Validation files of the same kinds (`OUT.val.jsonl`); evaluated at the end of training when given."""
    output_dir: Path
    model: str = TINY
    """`tiny`, `student`, a .gguf file, a Hugging Face model folder, or a hub id already in the local HF cache."""
    tokenizer: str | None = None
    """Tokenizer folder or .gguf; default: the model's own (for `tiny`, the student GGUF's Qwen2.5 tokenizer)."""
    tiny: TinyModel = Field(default_factory=TinyModel)
    finetuning: Literal["lora", "full"] = "lora"
    lora: LoraSettings = Field(default_factory=LoraSettings)
    max_seq_len: int = Field(4096, ge=16)
    """Longest row in tokens; a longer row is an error (or dropped, `too_long: drop`), never silently cut."""
    too_long: Literal["error", "drop"] = "error"
    packing: bool = False
    """Pack several rows into each sequence of `max_seq_len` tokens (attention stays within a row)."""
    max_steps: int = -1
    """Optimizer steps; -1: `epochs` passes over the data."""
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(1, ge=1)
    """Rows (or packed sequences) per device and step, before gradient accumulation."""
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    lr_scheduler: Literal["constant", "linear", "cosine"] = "cosine"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    gradient_checkpointing: bool = False
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 where the GPU supports it, else fp32 (CPU)."""
    logging_steps: int = Field(1, ge=1)
    save_steps: int | None = Field(None, ge=1)
    """Also keep a checkpoint every N steps (resumable with `resume: true`); the final model is always saved."""
    resume: bool = False
    """Continue from the newest checkpoint in `output_dir`."""
    seed: int = 0
    progress: bool = True
    export: ExportSettings = Field(default_factory=ExportSettings)

    @field_validator("data", "val_data", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        """`--data f.jsonl` on the command line gives one path; YAML may give a list."""
        return [value] if isinstance(value, (str, Path)) else value

    @model_validator(mode="after")
    def _servable(self) -> TrainConfig:
        if self.export.serve_name and self.finetuning == "lora" and self.model == TINY:
            raise ValueError("a LoRA adapter of `model: tiny` has no base GGUF to run on; export a tiny model with "
                             "finetuning: full")
        return self


def load_train_config(argv: list[str]) -> TrainConfig:
    """`--config F` (repeatable) merged in order, then `--dotted.key value` overrides; errors name file and key."""
    files, overrides = parse_cli(argv)
    return build_config(TrainConfig, files, overrides)
