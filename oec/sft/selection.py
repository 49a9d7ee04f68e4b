"""Which rows go out, and where: at most N per instance, and a train/validation split by instance.

Both choices are seeded and depend only on the instance ids and the rows themselves, so a rerun on the same
inputs with the same seed picks the same rows and the same split.
"""

from __future__ import annotations

import random
from typing import Any


def cap_per_instance(rows: list[dict[str, Any]], max_per_instance: int | None, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept, dropped): a seeded sample of at most `max_per_instance` rows of each instance, in input order."""
    if max_per_instance is None:
        return rows, []
    by_instance: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_instance.setdefault(row["instance_id"], []).append(index)
    chosen: set[int] = set()
    for instance_id, indices in by_instance.items():
        chosen.update(random.Random(f"{seed}/{instance_id}").sample(indices, min(len(indices), max_per_instance)))
    return [r for i, r in enumerate(rows) if i in chosen], [r for i, r in enumerate(rows) if i not in chosen]


def split_by_instance(rows: list[dict[str, Any]], val_fraction: float, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, validation): round(val_fraction x instances) whole instances go to validation, at least one stays in train."""
    instances = sorted({row["instance_id"] for row in rows})
    n_val = min(round(val_fraction * len(instances)), max(len(instances) - 1, 0))
    shuffled = instances[:]
    random.Random(seed).shuffle(shuffled)
    validation = set(shuffled[:n_val])
    return [r for r in rows if r["instance_id"] not in validation], [r for r in rows if r["instance_id"] in validation]
