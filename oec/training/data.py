"""Rows of our SFT files as `input_ids` + `labels`, checked before any training starts.

JSONL rows are tokenized with the tokenizer's chat template by the SFT stage's own `tokenize_row`, so training sees
exactly the tokens the Parquet export would hold; Parquet rows are taken as they are. Every problem is reported
as `FILE row N (traj_id): ...`, rows counted from 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import track

from oec.sft.errors import SFTError
from oec.sft.tokenized import IGNORE_INDEX, tokenize_row
from oec.training.errors import TrainingError


@dataclass
class TokenizedRows:
    """What one or more SFT files give the trainer, and the counts the manifest reports."""

    input_ids: list[list[int]] = field(default_factory=list)
    labels: list[list[int]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return sum(map(len, self.input_ids))

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for labels in self.labels for label in labels)

    def as_dataset(self) -> Any:
        from datasets import Dataset

        return Dataset.from_dict({"input_ids": self.input_ids, "labels": self.labels})


def _where(path: Path, index: int, traj_id: object = None) -> str:
    return f"{path} row {index}" + (f" ({traj_id})" if traj_id else "")


def _jsonl_rows(path: Path, tokenizer: Any, show_progress: bool) -> Iterator[tuple[int, object, list[int], list[int]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    for index, line in track(list(enumerate(lines, 1)), description=f"tokenizing {path.name}", transient=True,
                             disable=not show_progress):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainingError(f"{_where(path, index)}: not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict) or not isinstance(row.get("messages"), list) or not row["messages"]:
            raise TrainingError(f"{_where(path, index)}: expected an SFT row with a non-empty 'messages' list "
                                "(the output of convert_to_sft.sh)")
        traj_id = row.get("traj_id")
        row = {"traj_id": traj_id or f"row {index}", **row}
        try:
            input_ids, labels = tokenize_row(tokenizer, row)
        except SFTError as exc:
            raise TrainingError(f"{_where(path, index, traj_id)}: {str(exc).split(': ', 1)[-1]}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainingError(f"{_where(path, index, traj_id)}: the chat template cannot render this row ({exc})") from None
        yield index, traj_id, input_ids, labels


def _parquet_rows(path: Path) -> Iterator[tuple[int, object, list[int], list[int]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise TrainingError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = {"input_ids", "labels"} - set(table.column_names)
    if missing:
        raise TrainingError(f"{path}: no column {', '.join(sorted(missing))} (expected the --tokenizer export of "
                            "convert_to_sft.sh)")
    traj_ids = table.column("traj_id").to_pylist() if "traj_id" in table.column_names else [None] * table.num_rows
    for index, (traj_id, input_ids, labels) in enumerate(
            zip(traj_ids, table.column("input_ids").to_pylist(), table.column("labels").to_pylist()), 1):
        if input_ids is None or labels is None or len(input_ids) != len(labels):
            raise TrainingError(f"{_where(path, index, traj_id)}: input_ids and labels differ in length")
        if any(label not in (token, IGNORE_INDEX) for token, label in zip(input_ids, labels)):
            raise TrainingError(f"{_where(path, index, traj_id)}: a label is neither its token nor {IGNORE_INDEX}")
        yield index, traj_id, input_ids, labels


def load_rows(paths: list[Path], tokenizer: Any, vocab_size: int, max_seq_len: int, drop_too_long: bool,
              show_progress: bool = True) -> TokenizedRows:
    """Tokenized rows of every file; a row without trained tokens is dropped (and counted), a file without any is an
    error, and so are token ids the model cannot embed and rows over `max_seq_len` (unless dropping those)."""
    rows = TokenizedRows()
    for path in paths:
        reader = _parquet_rows(path) if path.suffix == ".parquet" else _jsonl_rows(path, tokenizer, show_progress)
        trained_before, first_empty, count = rows.trained_tokens, None, 0
        for index, traj_id, input_ids, labels in reader:
            count += 1
            outside = next((token for token in input_ids if not 0 <= token < vocab_size), None)
            if outside is not None:
                raise TrainingError(f"{_where(path, index, traj_id)}: token id {outside} is outside the model's vocabulary "
                                    f"(0..{vocab_size - 1}): the file was tokenized with another tokenizer")
            if all(label == IGNORE_INDEX for label in labels):
                first_empty = first_empty or _where(path, index, traj_id)
                rows.dropped["no trained tokens"] = rows.dropped.get("no trained tokens", 0) + 1
                continue
            if len(input_ids) > max_seq_len:
                if not drop_too_long:
                    raise TrainingError(f"{_where(path, index, traj_id)}: {len(input_ids)} tokens, longer than max_seq_len "
                                        f"{max_seq_len} (raise max_seq_len, or set too_long: drop)")
                rows.dropped["longer than max_seq_len"] = rows.dropped.get("longer than max_seq_len", 0) + 1
                continue
            rows.input_ids.append(input_ids)
            rows.labels.append(labels)
        if count == 0:
            raise TrainingError(f"{path}: no rows")
        if rows.trained_tokens == trained_before and first_empty is not None:
            raise TrainingError(f"{path}: no trained tokens in any of its {count} rows (first: {first_empty}): every "
                                "assistant turn has weight 0")
    if not rows.input_ids:
        raise TrainingError(f"{', '.join(map(str, paths))}: every row was dropped ({rows.dropped})")
    return rows
