"""The model and tokenizer a config names, and the check that they belong together.

`tiny` is built from a config (random weights, seeded) around the real Qwen2.5 tokenizer; a .gguf file is
dequantized by transformers (fp32 on CPU); folders and cached hub ids load as usual, offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oec.sft.errors import SFTError
from oec.sft.tokenized import load_tokenizer
from oec.training.config import LOCAL_STUDENT, TINY, TrainConfig
from oec.training.errors import TrainingError


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from: what the manifest records and the GGUF export builds on."""

    kind: str
    """tiny | gguf | folder | hub"""
    path: str
    """The .gguf file, folder or hub id ('tiny' for the random model)."""
    tokenizer: str
    """The tokenizer folder or .gguf actually used."""


def _student_gguf() -> Path:
    from sweagent.local_models.catalog import get_spec
    from sweagent.local_models.weights import ensure_weights

    return ensure_weights(get_spec("student"))


def resolve_source(config: TrainConfig) -> ModelSource:
    """Turn `model` / `tokenizer` into concrete paths (fetching the pinned student GGUF when needed)."""
    name = config.model
    if name in (TINY, LOCAL_STUDENT):
        kind, path = ("gguf", str(_student_gguf())) if name == LOCAL_STUDENT else ("tiny", TINY)
    else:
        candidate = Path(name).expanduser()
        if candidate.suffix == ".gguf":
            if not candidate.is_file():
                raise TrainingError(f"key 'model': {candidate} does not exist")
            kind, path = "gguf", str(candidate.resolve())
        elif candidate.is_dir():
            kind, path = "folder", str(candidate.resolve())
        elif candidate.exists() or name.startswith((".", "/", "~")):
            raise TrainingError(f"key 'model': {name} is neither a .gguf file nor a model folder")
        else:
            kind, path = "hub", name
    tokenizer = config.tokenizer or (str(_student_gguf()) if kind == "tiny" else path)
    return ModelSource(kind=kind, path=path, tokenizer=tokenizer)


def gguf_tokenizer_folder(gguf: Path) -> Path:
    """The tokenizer of a GGUF file as a Hugging Face folder in the cache: reading it out of the GGUF takes a minute
    on two cores, loading the folder a second. Keyed by the file's path, size and mtime, so a changed file misses."""
    from sweagent.utils.cache import cache_root

    gguf = gguf.resolve()
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:24]
    folder = cache_root() / "tokenizers" / f"{gguf.stem}-{key}"
    if not (folder / "tokenizer_config.json").is_file():
        tokenizer = load_tokenizer(gguf)
        partial = folder.with_name(f".{folder.name}.{os.getpid()}")
        tokenizer.save_pretrained(str(partial))
        os.replace(partial, folder) if not folder.exists() else shutil.rmtree(partial)
    return folder


def _load_tokenizer(source: ModelSource) -> Any:
    path = Path(source.tokenizer).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        path = gguf_tokenizer_folder(path)
    if not path.exists():
        from transformers import AutoTokenizer

        try:  # a hub id: only what the local HF cache holds (HF_HUB_OFFLINE=1)
            return AutoTokenizer.from_pretrained(source.tokenizer)
        except (OSError, ValueError) as exc:
            raise TrainingError(f"key 'tokenizer': cannot load {source.tokenizer} ({str(exc).splitlines()[0]})") from None
    try:
        return load_tokenizer(path)
    except SFTError as exc:
        raise TrainingError(f"key 'tokenizer': {str(exc).removesuffix(' (option --tokenizer)')}") from None


def vocab_fingerprint(tokenizer: Any) -> str:
    """sha256 of the token → id table: two tokenizers that encode alike have the same one."""
    table = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    return hashlib.sha256(table.encode()).hexdigest()


def _own_tokenizer_path(source: ModelSource) -> str | None:
    """The tokenizer the weights came with, when it is not the one in use."""
    own = source.path if source.kind in ("gguf", "folder") else None
    if own is None or Path(own).resolve() == Path(source.tokenizer).expanduser().resolve():
        return None
    if source.kind == "folder" and not any((Path(own) / name).exists() for name in ("tokenizer.json", "tokenizer_config.json")):
        return None
    return own


def check_match(tokenizer: Any, model: Any, source: ModelSource) -> None:
    """Refuse a tokenizer that does not belong to the model: ids past the embedding, or another vocabulary."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise TrainingError(f"key 'tokenizer': {source.tokenizer} has {len(tokenizer)} tokens but the model {source.path} "
                            f"embeds only {rows}: the tokenizer does not match the model")
    own_path = _own_tokenizer_path(source)
    if own_path is not None:
        own = _load_tokenizer(ModelSource(source.kind, source.path, own_path))
        if vocab_fingerprint(own) != vocab_fingerprint(tokenizer):
            raise TrainingError(f"key 'tokenizer': {source.tokenizer} has another vocabulary than the model's own "
                                f"tokenizer ({own_path}): the tokenizer does not match the model")


def _tiny_model(config: TrainConfig, tokenizer: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    shape = config.tiny
    model_config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=shape.hidden_size, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads, intermediate_size=shape.intermediate_size,
        max_position_embeddings=32768, tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    torch.manual_seed(config.seed)
    return AutoModelForCausalLM.from_config(model_config, dtype=torch.float32)


def load_model_and_tokenizer(config: TrainConfig, source: ModelSource) -> tuple[Any, Any]:
    """(model, tokenizer), checked to belong together; the tokenizer gets a pad token if it has none."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = _load_tokenizer(source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if source.kind == "tiny":
        model = _tiny_model(config, tokenizer)
    else:
        dtype = torch.bfloat16 if use_bf16(config) else torch.float32
        options: dict[str, Any] = {}
        folder = source.path
        if source.kind == "gguf":
            from transformers import GgufConfig

            # Dense weights, trainable: without `dequantize` the model stays marked as GGUF-quantized, which Trainer refuses.
            folder = str(Path(source.path).parent)
            options = {"gguf_file": Path(source.path).name,
                       "quantization_config": GgufConfig(gguf_file=Path(source.path).name, dequantize=True)}
        try:
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **options)
        except (OSError, ValueError) as exc:
            raise TrainingError(f"key 'model': cannot load {source.path} ({str(exc).splitlines()[0]})") from None
    check_match(tokenizer, model, source)
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and config.max_seq_len > context:
        raise TrainingError(f"key 'max_seq_len': {config.max_seq_len} is longer than the model's context ({context})")
    return model, tokenizer


def use_bf16(config: TrainConfig) -> bool:
    import torch

    if config.precision == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return config.precision == "bf16"
