"""The tokenized export: `input_ids` and `labels` (-100 on every token not trained) in Parquet.

The text is the tokenizer's own chat template applied to the row. Each assistant message's characters are
found by rendering the conversation up to it twice (with the generation prompt, and with the message), so a
token is trained exactly when it lies inside an assistant message of weight 1: the message and the template's
end-of-turn marker, never the role header, the prompt or an observation.
"""

from __future__ import annotations

import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import track

from sweagent.utils.files import write_bytes_atomic

from oec.sft.errors import SFTError

IGNORE_INDEX = -100
_SCHEMA = pa.schema([("instance_id", pa.string()), ("traj_id", pa.string()),
                     ("input_ids", pa.list_(pa.int32())), ("labels", pa.list_(pa.int32()))])


@lru_cache(maxsize=4)
def load_tokenizer(path: str | Path) -> Any:
    """A Hugging Face tokenizer folder, or a GGUF file (transformers reads the tokenizer from its metadata).
    Cached: reading a tokenizer out of a GGUF takes tens of seconds."""
    from transformers import AutoTokenizer  # heavy import, only needed for this export

    path = Path(path)
    if path.is_file() and path.suffix == ".gguf":
        folder, options = path.parent, {"gguf_file": path.name}
    elif path.is_dir():
        folder, options = path, {}
    else:
        raise SFTError(f"{path}: expected a tokenizer folder or a .gguf file (option --tokenizer)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), **options)
    except (OSError, ValueError) as exc:
        raise SFTError(f"{path}: cannot load a tokenizer ({exc}) (option --tokenizer)") from None
    if not getattr(tokenizer, "chat_template", None):
        raise SFTError(f"{path}: the tokenizer has no chat template (option --tokenizer)")
    if not tokenizer.is_fast:
        raise SFTError(f"{path}: a fast tokenizer is needed for character offsets (option --tokenizer)")
    return tokenizer


def _template_message(message: dict[str, Any]) -> dict[str, Any]:
    """A row message as chat templates expect it: no weight, tool-call arguments as objects."""
    out = {key: value for key, value in message.items() if key != "weight"}
    if "tool_calls" in out:
        out["tool_calls"] = [
            {**call, "function": {**call["function"], "arguments": json.loads(call["function"]["arguments"])}}
            for call in out["tool_calls"]
        ]
    return out


def tokenize_row(tokenizer: Any, row: dict[str, Any]) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one row. Raises SFTError when the chat template is not prefix-stable."""
    messages = [_template_message(m) for m in row["messages"]]
    tools = row.get("tools")

    def text(upto: int, generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(messages[:upto], tools=tools, tokenize=False,
                                             add_generation_prompt=generation_prompt)

    full = text(len(messages), False)
    spans = []
    for index, message in enumerate(row["messages"]):
        if message["role"] != "assistant" or not message.get("weight"):
            continue
        start, end = text(index, True), text(index + 1, False)
        if not (full.startswith(start) and full.startswith(end)):
            raise SFTError(f"{row['traj_id']}: the tokenizer's chat template renders earlier turns differently once later "
                           "turns follow, so trained tokens cannot be located")
        spans.append((len(start), len(end)))
    encoding = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    labels = []
    pending = iter(spans)
    span = next(pending, None)
    for token, (first, last) in zip(encoding["input_ids"], encoding["offset_mapping"]):
        while span is not None and first >= span[1]:
            span = next(pending, None)
        trained = span is not None and span[0] <= first < last <= span[1]
        labels.append(token if trained else IGNORE_INDEX)
    return list(encoding["input_ids"]), labels


def write_tokenized(path: Path, rows: list[dict[str, Any]], tokenizer: Any, show_progress: bool = True) -> None:
    columns: dict[str, list[Any]] = {name: [] for name in _SCHEMA.names}
    for row in track(rows, description=f"tokenizing {path.name}", disable=not show_progress, transient=True):
        input_ids, labels = tokenize_row(tokenizer, row)
        columns["instance_id"].append(row["instance_id"])
        columns["traj_id"].append(row["traj_id"])
        columns["input_ids"].append(input_ids)
        columns["labels"].append(labels)
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns, schema=_SCHEMA), buffer)
    write_bytes_atomic(path, buffer.getvalue())
