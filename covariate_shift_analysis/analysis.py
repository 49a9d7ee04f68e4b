"""One covariate-shift analysis from settings to files: select rollouts, embed turns, compare, write, plot."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from covariate_shift_analysis.bootstrap import compare_levels
from covariate_shift_analysis.cache import EmbeddingCache
from covariate_shift_analysis.config import AnalysisConfig
from covariate_shift_analysis.dataset import Dataset, build_dataset
from covariate_shift_analysis.embedder import TRUNCATION_RULE, TurnEmbedder, cache_identity, resolve_model
from covariate_shift_analysis.embedding import EmbeddingPass, embed_selection
from covariate_shift_analysis.groups import select_rollouts
from covariate_shift_analysis.metrics import MetricSettings
from covariate_shift_analysis.plots import (
    FIGURE_SETS,
    TRAJECTORY_MAP_DESCRIPTION,
    VIEWS,
    CurveContext,
    curve_description,
    group_styles,
    plot_metric_curves,
    plot_trajectory_map,
    style_names,
)
from covariate_shift_analysis.readme import README, write_readme
from covariate_shift_analysis.report import write_manifest, write_metric_tables
from covariate_shift_analysis.turns import format_turn

log = logging.getLogger(__name__)


@dataclass
class AnalysisResult:
    turns: pd.DataFrame
    """One row per (metric, group, turn); `turn` is 1-based."""
    trajectories: pd.DataFrame
    """One row per (metric, group) on trajectory embeddings."""
    files: list[Path]
    manifest: dict[str, Any]


def _warn_empty(passed: EmbeddingPass) -> None:
    for group, paths in passed.empty.items():
        shown = ", ".join(str(path) for path in paths[:3]) + (", ..." if len(paths) > 3 else "")
        log.warning("group '%s': skipped %d empty trajectories (no steps): %s", group, len(paths), shown)


def turn_counts(dataset: Dataset) -> pd.DataFrame:
    """Per group and turn: how many trajectories reach it and which share of those turns the expert took."""
    rows = []
    for table in dataset.turns:
        reached = (table.rows >= 0).sum(axis=0)
        expert = dataset.expert[table.name].sum(axis=0)
        for turn, (count, by_expert) in enumerate(zip(reached, expert), start=1):
            if count:
                rows.append({"group": table.name, "turn": turn, "trajectories": int(count), "expert_share": by_expert / count})
    return pd.DataFrame(rows)


def _settings_record(settings: MetricSettings) -> dict[str, float]:
    return {"kl_ridge": settings.ridge, "rbf_bandwidth": settings.bandwidth}


def _embed(config: AnalysisConfig, progress: bool) -> tuple[Dataset, EmbeddingPass, dict[str, Any]]:
    """Select rollouts, embed their turns (cache first), and lay the vectors out; with a manifest record."""
    selection = select_rollouts(config)
    order = list(selection)
    embedder = TurnEmbedder(config.embedding)
    with EmbeddingCache(config.embedding.cache_dir, cache_identity(config.embedding)) as cache:
        roles = {name: config.role_for(name) for name in order}
        passed = embed_selection(selection, roles, embedder, cache, config.embedding.chunk_size, progress)
        _warn_empty(passed)
        dataset = build_dataset(passed.rollouts, order, cache, config.metrics.min_samples_per_turn)
        cache_file = str(cache.path)
    record = {
        "model": config.embedding.model,
        "resolved_model": resolve_model(config.embedding.model),
        "device": embedder.device,
        "cache_file": cache_file,
        "turns": passed.turns,
        "distinct_texts": dataset.vectors.shape[0],
        "dimension": dataset.vectors.shape[1],
        "embedded_this_run": passed.embedded,
        "embed_seconds": round(passed.embed_seconds, 3),
    }
    return dataset, passed, record


def _plot(
    turns: pd.DataFrame, trajectory_vectors: np.ndarray, labels: list[str], dataset: Dataset, config: AnalysisConfig
) -> tuple[dict[Path, str], dict[str, float]]:
    """The figures of `config.figures`, cut at the reference's median length + 1 SD; returns {file: what it shows}."""
    lengths = dataset.reference_lengths
    median = float(np.median(lengths))
    spread = float(np.std(lengths, ddof=1)) if len(lengths) > 1 else 0.0
    length_record = {"median": median, "sd": spread, "plot_cut": max(median + spread, 1.0)}
    if config.figures == "none":
        return {}, length_record
    names = [table.name for table in dataset.turns]
    context = CurveContext(
        reference=config.reference,
        styles=group_styles(names),
        trajectories={name: len(dataset.traj_ids[name]) for name in names},
        instances=len(dataset.instances),
        replicates=config.bootstrap.replicates,
        median=median,
        spread=spread,
    )
    plots = Path(config.output_dir) / "plots"
    figures: dict[Path, str] = {}
    for metric, view in FIGURE_SETS[config.figures]:
        description = curve_description(metric, view, config.reference)
        for path in plot_metric_curves(turns, metric, VIEWS[view], context, plots / f"{metric}_{view}"):
            figures[path] = description
    projection = PCA(n_components=2, random_state=config.bootstrap.seed).fit(trajectory_vectors)
    for path in plot_trajectory_map(
        projection.transform(trajectory_vectors), labels, context.styles, projection.explained_variance_ratio_,
        plots / "trajectory_pca",
    ):
        figures[path] = TRAJECTORY_MAP_DESCRIPTION
    return figures, length_record


def run_analysis(config: AnalysisConfig, progress: bool = True, command: list[str] | None = None) -> AnalysisResult:
    started = time.perf_counter()
    output_dir = Path(config.output_dir)
    dataset, passed, embedding_record = _embed(config, progress)
    pca_record: dict[str, Any] | None = None
    if config.metrics.pca_dim:
        pca = dataset.project(config.metrics.pca_dim, config.bootstrap.seed)
        pca_record = {"dimension": config.metrics.pca_dim, "explained_variance": float(pca.explained_variance_ratio_.sum())}

    turns, turn_settings = compare_levels(dataset.turns, dataset.vectors, config, stream=0, progress=progress)
    turns = turns.rename(columns={"level": "turn"}).assign(turn=lambda frame: frame["turn"] + 1)
    trajectory_tables, trajectory_vectors = dataset.trajectory_level()
    trajectories, trajectory_settings = compare_levels(trajectory_tables, trajectory_vectors, config, stream=1, progress=progress)
    trajectories = trajectories.drop(columns="level")
    files = write_metric_tables(turns, trajectories, turn_counts(dataset), output_dir)
    labels = [table.name for table in trajectory_tables for _ in range(len(table.rows))]
    figures, length_record = _plot(turns, trajectory_vectors, labels, dataset, config)
    files += list(figures)

    manifest = {
        "command": command,
        "config": config.model_dump(mode="json"),
        "turn_definition": {
            "unit": "one agent step (trajectory[i]): action + observation; the thought is not embedded",
            "text_format": format_turn("<action>", "<observation>"),
            "truncation_rule": TRUNCATION_RULE,
            "turn_numbering": "1-based step index",
        },
        "embedding": embedding_record,
        "groups": {
            name: {
                "run_dirs": [str(path) for path in config.groups[name].run_dirs],
                "default_role": config.role_for(name),
                "trajectories_used": len(dataset.traj_ids[name]),
                "empty_skipped": [str(path) for path in passed.empty.get(name, [])],
            }
            for name in dataset.traj_ids
        },
        "shared_instances": dataset.instances,
        "reference_length": length_record,
        "metric_settings": {
            "per_turn": _settings_record(turn_settings),
            "trajectory_level": {**_settings_record(trajectory_settings), "pooling": "mean of turn embeddings"},
            "pca": pca_record,
            "kl_direction": "KL(group || reference)",
            "mmd_estimator": "biased V-statistic; bandwidth = median pairwise distance of reference vectors",
            "bands": "2.5 and 97.5 percentiles of the paired bootstrap",
        },
        "elapsed_seconds": round(time.perf_counter() - started, 3),
    }
    files += [output_dir / "manifest.json", output_dir / README]
    manifest["outputs"] = [str(path.relative_to(output_dir)) for path in files]
    write_manifest(output_dir, manifest)
    write_readme(output_dir, manifest, figures, style_names(list(dataset.traj_ids)))
    return AnalysisResult(turns, trajectories, files, manifest)
