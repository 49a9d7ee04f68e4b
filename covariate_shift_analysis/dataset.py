"""The embedded groups as arrays: one matrix of distinct turn vectors and, per group, which row each turn uses.

Built after the embedding pass from cache keys, so each distinct text is held once however often it occurs.
Instances are re-checked here because empty trajectories were dropped: each must still have a non-empty rollout in
every group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA

from covariate_shift_analysis.bootstrap import GroupTable
from covariate_shift_analysis.cache import EmbeddingCache
from covariate_shift_analysis.embedding import EmbeddedRollout
from covariate_shift_analysis.errors import CovariateShiftError
from covariate_shift_analysis.groups import check_enough_instances, shared_instances


@dataclass
class Dataset:
    instances: list[str]
    vectors: np.ndarray
    """(distinct turn texts, dimension)."""
    turns: list[GroupTable]
    """Per group, reference first; levels are turn indices (0-based)."""
    expert: dict[str, np.ndarray]
    """Per group, (rollouts, turns) True where the turn was taken by the expert."""
    traj_ids: dict[str, list[str]]

    @property
    def reference_lengths(self) -> np.ndarray:
        return (self.turns[0].rows >= 0).sum(axis=1)

    def project(self, dimension: int, seed: int) -> PCA:
        """Replace the vectors by their first `dimension` principal components (fitted on all groups' turns)."""
        limit = min(self.vectors.shape)
        if dimension > limit:
            raise CovariateShiftError(
                f"metrics.pca_dim: {dimension} is more than the {limit} components the {len(self.vectors)} "
                f"distinct turns of {self.vectors.shape[1]} dimensions allow"
            )
        pca = PCA(n_components=dimension, random_state=seed)
        self.vectors = pca.fit_transform(self.vectors).astype(np.float32)
        return pca

    def trajectory_level(self) -> tuple[list[GroupTable], np.ndarray]:
        """Each rollout as the mean of its turn vectors, laid out as one-level tables over a stacked matrix."""
        tables, blocks, offset = [], [], 0
        for table in self.turns:
            means = np.stack([self.vectors[rows[rows >= 0]].mean(axis=0) for rows in table.rows])
            blocks.append(means)
            tables.append(GroupTable(table.name, table.count, (offset + np.arange(len(means)))[:, None]))
            offset += len(means)
        return tables, np.concatenate(blocks)


def build_dataset(
    rollouts: dict[str, list[EmbeddedRollout]], order: list[str], cache: EmbeddingCache, minimum: int
) -> Dataset:
    """Arrays for the groups in `order` (reference first) over the instances all of them still have."""
    available = {name: {rollout.instance_id for rollout in rollouts.get(name, [])} for name in order}
    instances = shared_instances(available)
    check_enough_instances(available, len(instances), minimum)
    position = {instance_id: index for index, instance_id in enumerate(instances)}
    chosen = {
        name: sorted((r for r in rollouts[name] if r.instance_id in position), key=lambda r: position[r.instance_id])
        for name in order
    }
    keys = list(dict.fromkeys(key for name in order for rollout in chosen[name] for key in rollout.keys))
    row_of = {key: index for index, key in enumerate(keys)}
    longest = max(len(rollout.keys) for name in order for rollout in chosen[name])
    tables, expert, traj_ids = [], {}, {}
    for name in order:
        group = chosen[name]
        rows = np.full((len(group), longest), -1, dtype=np.int64)
        roles = np.zeros((len(group), longest), dtype=bool)
        for index, rollout in enumerate(group):
            rows[index, : len(rollout.keys)] = [row_of[key] for key in rollout.keys]
            roles[index, : len(rollout.roles)] = [role == "expert" for role in rollout.roles]
        count = np.bincount([position[rollout.instance_id] for rollout in group], minlength=len(instances))
        tables.append(GroupTable(name, count, rows))
        expert[name] = roles
        traj_ids[name] = [rollout.traj_id for rollout in group]
    return Dataset(instances, cache.get(keys), tables, expert, traj_ids)
