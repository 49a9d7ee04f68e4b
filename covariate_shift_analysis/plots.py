"""Figures (PNG and PDF): overlays of every group's per-turn curve against the reference, and a map of trajectories.

A curve figure shows one metric in one view of the bootstrap replicates (`VIEWS`: the paper's median with 95 % band,
median ± 1 SD and full range). Curves stop at the reference's median length + 1 SD, past which few trajectories are
left; dashed and dotted lines mark the median and median + 1 SD so a reader sees which part of a curve rests on most
of the data.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
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
COLOURS = ["blue", "orange", "green", "red", "purple", "brown", "pink", "gray", "olive", "cyan"]
"""Matplotlib's tab10 palette by name, so the output folder's README can say which colour a group has."""
MARKERS = [("o", "circles"), ("s", "squares"), ("^", "triangles"), ("D", "diamonds"), ("v", "down triangles"),
           ("P", "plus signs"), ("X", "crosses"), ("<", "left triangles"), (">", "right triangles"), ("h", "hexagons")]


def group_styles(groups: list[str]) -> dict[str, tuple[str, str]]:
    """(colour, marker) per group, fixed by group order (reference first) so a group looks the same in every figure."""
    return {
        group: (f"tab:{COLOURS[index % len(COLOURS)]}", MARKERS[index % len(MARKERS)][0])
        for index, group in enumerate(groups)
    }


def style_names(groups: list[str]) -> dict[str, str]:
    """`orange, squares` per group: the words for what `group_styles` draws."""
    return {
        group: f"{COLOURS[index % len(COLOURS)]}, {MARKERS[index % len(MARKERS)][1]}" for index, group in enumerate(groups)
    }


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


@dataclass(frozen=True)
class View:
    """One way of summarising a turn's bootstrap replicates: a centre line and a band (the paper shows three)."""

    name: str
    caption: str
    band: Callable[[pd.DataFrame], tuple[pd.Series, pd.Series]]


VIEWS = {
    "median": View("median", "median and 95% band (2.5th-97.5th percentile)", lambda c: (c["ci_low"], c["ci_high"])),
    # Clipped to the replicates' range, so a non-negative metric (Fréchet, KL) never shows a band below zero.
    "sd": View("sd", "median ± 1 SD", lambda c: ((c["median"] - c["sd"]).clip(lower=c["min"]),
                                                  (c["median"] + c["sd"]).clip(upper=c["max"]))),
    "range": View("range", "median and full range (min-max)", lambda c: (c["min"], c["max"])),
}


FIGURE_SETS: dict[str, list[tuple[str, str]]] = {
    "paper": [("frechet", view) for view in VIEWS] + [("kl", view) for view in VIEWS] + [("mmd", "median")],
    "all": [(metric, view) for metric in METRIC_LABELS for view in VIEWS],
    "none": [],
}
"""(metric, view) of each curve figure that a `figures` setting draws; every set but `none` adds the trajectory map."""


def curve_description(metric: str, view: str, reference: str) -> str:
    """What a curve figure shows, in the words of the output folder's README."""
    stars = "; stars mark turns where the MMD² permutation test gives p < 0.05" if metric == "mmd" else ""
    return (
        f"{METRIC_LABELS[metric]} between each group's and {reference}'s turn embeddings at every turn: "
        f"{VIEWS[view].caption} of the bootstrap replicates{stars}"
    )


@dataclass(frozen=True)
class CurveContext:
    """What every curve figure of one analysis shares: reference, group styles and counts, and the length cut."""

    reference: str
    styles: dict[str, tuple[str, str]]
    trajectories: dict[str, int]
    instances: int
    replicates: int
    median: float
    spread: float

    @property
    def cut(self) -> float:
        return max(self.median + self.spread, 1.0)


def plot_metric_curves(frame: pd.DataFrame, metric: str, view: View, context: CurveContext, stem: Path) -> list[Path]:
    """Every group's per-turn divergence from the reference in one view, cut at the reference's median length + 1 SD."""
    cut = context.cut
    figure, axes = plt.subplots(figsize=(9, 4.5))
    rows = frame[(frame["metric"] == metric) & (frame["turn"] <= cut)].dropna(subset=["median"])
    compared = [group for group in context.styles if group != context.reference]
    for index, group in enumerate(compared):
        colour, marker = context.styles[group]
        curve = rows[rows["group"] == group]
        label = f"{group} ({context.trajectories[group]} trajectories)"
        # each later group a little thinner, so groups whose curves coincide stay visible
        axes.plot(curve["turn"], curve["median"], color=colour, marker=marker, label=label,
                  linewidth=max(2.8 - 0.6 * index, 1.0), markersize=max(8.0 - 1.5 * index, 3.5))
        low, high = view.band(curve)
        axes.fill_between(curve["turn"], low, high, color=colour, alpha=0.2, linewidth=0)
        if metric == "mmd":
            significant = curve[curve["p_value"] < SIGNIFICANCE]
            axes.scatter(significant["turn"], significant["median"], color=colour, s=160, marker="*", zorder=4,
                         edgecolors="black", linewidths=0.6)
    if metric == "mmd" and rows["p_value"].notna().any():
        axes.scatter([], [], color="white", s=160, marker="*", edgecolors="black", linewidths=0.6,
                     label=f"permutation p < {SIGNIFICANCE}")
    axes.axvline(context.median, color="black", linestyle="--", linewidth=1,
                 label=f"{context.reference} median length ({context.median:g} turns)")
    if cut > context.median:  # with equal lengths the two lines coincide
        axes.axvline(cut, color="black", linestyle=":", linewidth=1, label=f"{context.reference} median + 1 SD ({cut:.1f})")
    axes.axhline(0.0, color="grey", linewidth=0.6)
    axes.set_xlim(0.5, cut + 0.5)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("turn (agent step: action + observation)")
    axes.set_ylabel(METRIC_LABELS[metric])
    axes.set_title(
        f"{METRIC_LABELS[metric]}: each group's turns vs. {context.reference}'s, turn by turn\n"
        f"{view.caption} of {context.replicates} paired bootstrap replicates; {context.instances} shared instances",
        fontsize=10,
    )
    axes.legend(fontsize=8, title="group", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.grid(alpha=0.3)
    return save_figure(figure, stem)


TRAJECTORY_MAP_DESCRIPTION = (
    "every trajectory (mean of its turn embeddings) on the first two principal components, one colour and marker per group"
)


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
    axes.set_title("Each trajectory as the mean of its turn embeddings, on the first two principal components", fontsize=10)
    axes.legend(fontsize=8, title="group (trajectories)", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.grid(alpha=0.3)
    return save_figure(figure, stem)
