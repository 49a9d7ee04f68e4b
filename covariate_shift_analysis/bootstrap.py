"""Every group against the reference at every level (turn index, or the whole trajectory), with paired bootstrap bands.

A level's sample for a group is the vectors of that group's rollouts that reach the level. `estimate_all_rollouts`
and the MMD² p-value use all (capped) rollouts of the shared instances. Replicate b draws the shared instances with replacement; for each draw
one uniform number u picks rollout floor(u·k) among the k rollouts every group has of that instance (common random
numbers), so a replicate holds one rollout per instance per group and two groups made of the same trajectories
are identical in every replicate. Over the replicates that had at least `metrics.min_samples_per_turn` vectors on
both sides each level keeps the mean, median, SD, the 2.5 and 97.5 percentiles (the 95 % band) and the range, so
every view of the figures can be drawn from the CSVs. With several rollouts per instance a replicate has fewer
vectors than the all-rollouts estimate, so the plug-in bias puts the bootstrap mean a little above that estimate;
figures draw the bootstrap statistics, which compare like with like across groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from covariate_shift_analysis.config import AnalysisConfig
from covariate_shift_analysis.metrics import METRICS, MetricSettings, Sample, mmd2_permutation_pvalue

SUMMARY_COLUMNS = ["mean", "median", "sd", "ci_low", "ci_high", "min", "max"]
"""Statistics of the bootstrap replicates kept for every (metric, group, level)."""


@dataclass(frozen=True)
class GroupTable:
    """One group's rollouts of the shared instances (grouped by instance): the vector row of each at each level."""

    name: str
    count: np.ndarray
    """(instances,) rollouts of each shared instance, at least 1."""
    rows: np.ndarray
    """(rollouts, levels) row into the vector matrix, -1 where the rollout does not reach the level."""

    @property
    def first(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.count)[:-1]])

    @property
    def instance(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.count)), self.count)

    def pick(self, instances: np.ndarray, draws: np.ndarray) -> np.ndarray:
        """One rollout per drawn instance, chosen by the shared uniform draws."""
        return self.first[instances] + (draws * self.count[instances]).astype(np.int64)


def _level_rows(table: GroupTable, rollouts: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
    """Vector rows of `rollouts` at `level`, and which rollouts they belong to (those that reach it)."""
    rows = table.rows[rollouts, level]
    present = rows >= 0
    return rows[present], rollouts[present]


def _sample(rows: np.ndarray, vectors: np.ndarray, settings: MetricSettings) -> Sample:
    distinct, counts = np.unique(rows, return_counts=True)
    return Sample(vectors[distinct], settings, counts)


def _bootstrap(
    tables: list[GroupTable], vectors: np.ndarray, settings: MetricSettings, config: AnalysisConfig,
    rng: np.random.Generator, progress: bool,
) -> np.ndarray:
    """(metric, group, level, replicate) values; NaN where a side had too few vectors."""
    reference, groups = tables[0], tables[1:]
    minimum, replicates = config.metrics.min_samples_per_turn, config.bootstrap.replicates
    levels, instances = reference.rows.shape[1], len(reference.count)
    draws = np.full((len(METRICS), len(groups), levels, replicates), np.nan)
    for replicate in tqdm(range(replicates), desc="bootstrap", unit="replicate", disable=not progress):
        drawn = rng.integers(instances, size=instances)
        uniforms = rng.random(instances)
        picks = [table.pick(drawn, uniforms) for table in tables]
        for level in range(levels):
            reference_rows, _ = _level_rows(reference, picks[0], level)
            if len(reference_rows) < minimum:
                continue
            reference_sample = _sample(reference_rows, vectors, settings)
            for index, table in enumerate(groups):
                group_rows, _ = _level_rows(table, picks[index + 1], level)
                if len(group_rows) < minimum:
                    continue
                group_sample = _sample(group_rows, vectors, settings)
                for metric_index, metric in enumerate(METRICS.values()):
                    draws[metric_index, index, level, replicate] = metric(group_sample, reference_sample)
    return draws


def replicate_summary(values: np.ndarray) -> dict[str, float]:
    """What the figures draw from one level's valid replicates: mean, median, SD, the 95 % band and the full range."""
    if not values.size:
        return dict.fromkeys(SUMMARY_COLUMNS, np.nan)
    return {
        "mean": values.mean(),
        "median": np.median(values),
        "sd": values.std(ddof=1) if values.size > 1 else 0.0,
        "ci_low": np.percentile(values, 2.5),
        "ci_high": np.percentile(values, 97.5),
        "min": values.min(),
        "max": values.max(),
    }


def compare_levels(
    tables: list[GroupTable],
    vectors: np.ndarray,
    config: AnalysisConfig,
    stream: int,
    progress: bool = True,
) -> tuple[pd.DataFrame, MetricSettings]:
    """One row per (metric, group, level) for every group but the reference (`tables[0]`)."""
    # thousands of small decompositions: extra BLAS threads only contend with each other (and slow 10x on busy hosts)
    with threadpool_limits(limits=1, user_api="blas"):
        return _compare_levels(tables, vectors, config, stream, progress)


def _compare_levels(
    tables: list[GroupTable], vectors: np.ndarray, config: AnalysisConfig, stream: int, progress: bool
) -> tuple[pd.DataFrame, MetricSettings]:
    reference, groups = tables[0], tables[1:]
    rng = np.random.default_rng([config.bootstrap.seed, stream])
    used = reference.rows[reference.rows >= 0]
    settings = MetricSettings.for_reference(vectors[used], config.metrics.kl_regularization, rng)
    draws = _bootstrap(tables, vectors, settings, config, rng, progress)
    minimum = config.metrics.min_samples_per_turn
    rows = []
    levels = range(reference.rows.shape[1])
    for level in tqdm(levels, desc="estimates and permutation tests", unit="level", disable=not progress):
        reference_rows, reference_rollouts = _level_rows(reference, np.arange(len(reference.rows)), level)
        reference_sample = _sample(reference_rows, vectors, settings)
        for index, table in enumerate(groups):
            group_rows, group_rollouts = _level_rows(table, np.arange(len(table.rows)), level)
            comparable = min(len(group_rows), len(reference_rows)) >= minimum
            group_sample = _sample(group_rows, vectors, settings)
            for metric_index, (name, metric) in enumerate(METRICS.items()):
                values = draws[metric_index, index, level]
                valid = values[~np.isnan(values)]
                p_value = np.nan
                if comparable and name == "mmd" and config.metrics.permutations:
                    p_value = mmd2_permutation_pvalue(
                        vectors[group_rows], vectors[reference_rows], table.instance[group_rollouts],
                        reference.instance[reference_rollouts], settings.bandwidth, config.metrics.permutations, rng,
                    )
                rows.append({
                    "metric": name,
                    "group": table.name,
                    "level": level,
                    "n_group": len(group_rows),
                    "n_reference": len(reference_rows),
                    "estimate_all_rollouts": metric(group_sample, reference_sample) if comparable else np.nan,
                    **replicate_summary(valid),
                    "replicates": valid.size,
                    "p_value": p_value,
                })
    return pd.DataFrame(rows), settings
