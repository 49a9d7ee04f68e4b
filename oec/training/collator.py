"""Batches of our rows for the trainer: right-padded, or packed several rows to a sequence.

Packed sequences carry `position_ids` that restart at 0 for each row and no `attention_mask`; transformers then
builds a block-diagonal causal mask from them (sdpa, eager and flash attention alike), so no token sees another
row. Padding of a packed batch is one more block of its own, with labels -100.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oec.sft.tokenized import IGNORE_INDEX


def pack_rows(input_ids: list[list[int]], labels: list[list[int]], capacity: int) -> list[dict[str, list[int]]]:
    """First-fit decreasing: rows (each at most `capacity` tokens) into as few sequences of `capacity` as it finds.
    The first label of every row is -100, so no row is trained to follow the one before it."""
    order = sorted(range(len(input_ids)), key=lambda index: -len(input_ids[index]))
    bins: list[dict[str, list[int]]] = []
    for index in order:
        ids = input_ids[index]
        target = next((b for b in bins if len(b["input_ids"]) + len(ids) <= capacity), None)
        if target is None:
            target = {"input_ids": [], "labels": [], "position_ids": []}
            bins.append(target)
        target["input_ids"] += ids
        target["labels"] += [IGNORE_INDEX, *labels[index][1:]]
        target["position_ids"] += list(range(len(ids)))
    return bins


@dataclass
class RowCollator:
    """Turns rows ({input_ids, labels[, position_ids]}) into tensors; packed rows keep their position_ids."""

    pad_token_id: int

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(row["input_ids"]) for row in rows)
        packed = "position_ids" in rows[0]
        batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": [],
                                             ("position_ids" if packed else "attention_mask"): []}
        for row in rows:
            pad = width - len(row["input_ids"])
            batch["input_ids"].append(row["input_ids"] + [self.pad_token_id] * pad)
            batch["labels"].append(row["labels"] + [IGNORE_INDEX] * pad)
            if packed:
                batch["position_ids"].append(row["position_ids"] + list(range(pad)))
            else:
                batch["attention_mask"].append([1] * len(row["input_ids"]) + [0] * pad)
        return {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}
