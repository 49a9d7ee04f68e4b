"""The streaming embedding pass: read the selected trajectories one at a time and embed only unseen turn texts.

Memory holds at most `embedding.chunk_size` pending texts plus one 32-byte key per turn; everything else is on
disk. Empty trajectories (no steps) are skipped and reported per group; a group with nothing else is an error,
raised as soon as that group is read.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from covariate_shift_analysis.cache import EmbeddingCache
from covariate_shift_analysis.embedder import TurnEmbedder
from covariate_shift_analysis.errors import CovariateShiftError
from covariate_shift_analysis.groups import Selection
from covariate_shift_analysis.turns import Turn, trajectory_turns
from sweagent.trajectory import ModelRole, load_trajectory


@dataclass(frozen=True)
class EmbeddedRollout:
    """One trajectory reduced to what the metrics need: its turns' cache keys and model roles."""

    instance_id: str
    traj_id: str
    keys: tuple[bytes, ...]
    roles: tuple[ModelRole, ...]


@dataclass
class EmbeddingPass:
    rollouts: dict[str, list[EmbeddedRollout]] = field(default_factory=lambda: defaultdict(list))
    empty: dict[str, list[Path]] = field(default_factory=lambda: defaultdict(list))
    turns: int = 0
    embedded: int = 0
    """Texts embedded in this run (the rest came from the cache or repeated an earlier text)."""
    embed_seconds: float = 0.0


class _Batcher:
    """Collects unseen texts and embeds + commits them a chunk at a time."""

    def __init__(self, embedder: TurnEmbedder, cache: EmbeddingCache, chunk_size: int, result: EmbeddingPass) -> None:
        self.embedder, self.cache, self.chunk_size, self.result = embedder, cache, chunk_size, result
        self.pending: dict[bytes, Turn] = {}

    def add(self, turns: list[Turn], keys: list[bytes]) -> None:
        fresh = {key: turn for key, turn in zip(keys, turns) if key not in self.pending}
        for key in self.cache.present(fresh):
            del fresh[key]
        self.pending.update(fresh)
        if len(self.pending) >= self.chunk_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        started = time.perf_counter()
        vectors = self.embedder.embed(list(self.pending.values()))
        self.cache.put(list(self.pending), vectors)
        self.result.embed_seconds += time.perf_counter() - started
        self.result.embedded += len(self.pending)
        self.pending.clear()


def embed_selection(
    selection: Selection,
    roles: dict[str, ModelRole],
    embedder: TurnEmbedder,
    cache: EmbeddingCache,
    chunk_size: int,
    progress: bool = True,
) -> EmbeddingPass:
    """Embed every turn of the selected rollouts into `cache`; return per-group keys and roles."""
    result = EmbeddingPass()
    batcher = _Batcher(embedder, cache, chunk_size, result)
    total = sum(len(rollouts) for by_instance in selection.values() for rollouts in by_instance.values())
    with tqdm(total=total, desc="embedding turns", unit="traj", disable=not progress) as bar:
        for group, by_instance in selection.items():
            for rollouts in by_instance.values():
                for rollout in rollouts:
                    turns = trajectory_turns(load_trajectory(rollout.path, roles[group]))
                    bar.update()
                    if not turns:
                        result.empty[group].append(rollout.path)
                        continue
                    keys = [turn.key for turn in turns]
                    batcher.add(turns, keys)
                    result.turns += len(turns)
                    result.rollouts[group].append(
                        EmbeddedRollout(rollout.instance_id, rollout.traj_id, tuple(keys), tuple(t.role for t in turns))
                    )
                    bar.set_postfix(turns=result.turns, embedded=result.embedded + len(batcher.pending), refresh=False)
            if not result.rollouts[group]:
                shown = ", ".join(str(path) for path in result.empty[group][:3])
                raise CovariateShiftError(f"group '{group}': every selected trajectory is empty (no steps): {shown}")
        batcher.flush()
    return result
