"""Figures (PNG and PDF): one overlay of bootstrap curves per metric, and a 2-D map of trajectory embeddings.

Curves stop at the reference's median length + 1 SD, past which few trajectories are left; dashed and dotted lines mark
the median and median + 1 SD so a reader sees which part of a curve rests on most of the data.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from covariate_shift_analysis.metrics import METRIC_LABELS  # noqa: E402
from sweagent.utils.files import write_bytes_atomic  # noqa: E402

SIGNIFICANCE = 0.05
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h"]


def group_styles(groups: list[str]) -> dict[str, tuple[str, str]]:
    """(colour, marker) per group, fixed by group order so a group looks the same in every figure."""
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {group: (colours[index % len(colours)], MARKERS[index % len(MARKERS)]) for index, group in enumerate(groups)}


def save_figure(figure: plt.Figure, stem: Path) -> list[Path]:
    """Write `<stem>.png` and `<stem>.pdf` atomically."""
    paths = []
    for suffix in ("png", "pdf"):
        buffer = io.BytesIO()
        figure.savefig(buffer, format=suffix, dpi=150, bbox_inches="tight")
        path = stem.with_suffix(f".{suffix}")
        write_bytes_atomic(path, buffer.getvalue())
        paths.append(path)
    plt.close(figure)
    return paths


def plot_metric_curves(
    frame: pd.DataFrame,
    metric: str,
    reference: str,
    styles: dict[str, tuple[str, str]],
    median: float,
    spread: float,
    replicates: int,
    stem: Path,
) -> list[Path]:
    """Bootstrap mean ± 95 % band per group against turn number, cut at the reference's median length + 1 SD."""
    cut = max(median + spread, 1.0)
    figure, axes = plt.subplots(figsize=(9, 4.5))
    rows = frame[(frame["metric"] == metric) & (frame["turn"] <= cut)].dropna(subset=["mean"])
    for group, curve in rows.groupby("group", sort=False):
        colour, marker = styles[group]
        axes.plot(curve["turn"], curve["mean"], color=colour, marker=marker, markersize=4, label=group)
        axes.fill_between(curve["turn"], curve["ci_low"], curve["ci_high"], color=colour, alpha=0.2, linewidth=0)
        if metric == "mmd":
            significant = curve[curve["p_value"] < SIGNIFICANCE]
            axes.scatter(significant["turn"], significant["mean"], color=colour, s=40, marker="*", zorder=3)
    if metric == "mmd" and rows["p_value"].notna().any():
        axes.scatter([], [], color="grey", s=40, marker="*", label=f"permutation p < {SIGNIFICANCE}")
    axes.axvline(median, color="black", linestyle="--", linewidth=1, label=f"{reference} median length ({median:g})")
    axes.axvline(cut, color="black", linestyle=":", linewidth=1, label=f"median + 1 SD ({cut:.1f})")
    axes.axhline(0.0, color="grey", linewidth=0.6)
    axes.set_xlim(0.5, cut + 0.5)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("turn (agent step: action + observation)")
    axes.set_ylabel(METRIC_LABELS[metric])
    axes.set_title(f"{METRIC_LABELS[metric]} vs. reference '{reference}'\nmean and 95% band of {replicates} paired bootstrap replicates", fontsize=10)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.grid(alpha=0.3)
    return save_figure(figure, stem)


def plot_trajectory_map(
    points: np.ndarray, groups: list[str], styles: dict[str, tuple[str, str]], explained: np.ndarray, stem: Path
) -> list[Path]:
    """Trajectory embeddings (mean of turn vectors) on their first two principal components, one colour per group.

    Hollow markers of different shapes, each group's a little smaller than the one before, keep groups visible
    where their trajectories coincide.
    """
    figure, axes = plt.subplots(figsize=(7.5, 5.5))
    labels = np.asarray(groups)
    for index, group in enumerate(dict.fromkeys(groups)):
        chosen = labels == group
        colour, marker = styles[group]
        axes.scatter(
            points[chosen, 0], points[chosen, 1], s=max(80 - 16 * index, 16), marker=marker, facecolors="none", edgecolors=colour,
            linewidths=1.2, label=f"{group} ({chosen.sum()})",
        )
    axes.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
    axes.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)")
    axes.set_title("Trajectory embeddings (mean of turn embeddings), PCA", fontsize=10)
    axes.legend(fontsize=8, title="group (trajectories)", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.grid(alpha=0.3)
    return save_figure(figure, stem)
