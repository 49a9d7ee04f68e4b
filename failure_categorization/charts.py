"""Charts of a results JSON (PNG and PDF): categories per exit status (counts and shares), category × repository.

Colours follow the category's place in the taxonomy, so the same category has the same colour in every chart and
every run with the same taxonomy; categories nobody got are left out of legends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from failure_categorization.taxonomy import ANALYSIS_ERROR

BY_STATUS = "categories_by_exit_status"
BY_STATUS_SHARE = "categories_by_exit_status_share"
BY_REPOSITORY = "categories_by_repository"
OTHER_REPOSITORIES = "(other repositories)"
CHART_DESCRIPTIONS = {
    BY_STATUS: "stacked bars: how many failed trajectories of each exit status fell in each category",
    BY_STATUS_SHARE: "the same bars as shares (%) of each exit status, with the trajectories per status under its name",
    BY_REPOSITORY: "heatmap: failed trajectories per category (rows) and repository (columns, most failures first)",
}
"""What each chart shows, for the README written next to them."""


def _colours(categories: list[str]) -> dict[str, Any]:
    judged = [c for c in categories if c != ANALYSIS_ERROR]
    palette = colormaps["tab10" if len(judged) <= 10 else "tab20"]
    colours = {name: palette(index % palette.N) for index, name in enumerate(judged)}
    colours[ANALYSIS_ERROR] = (0.35, 0.35, 0.35, 1.0)
    return colours


def _save(figure: Figure, output_dir: Path, stem: str) -> list[Path]:
    paths = [output_dir / f"{stem}.png", output_dir / f"{stem}.pdf"]
    for path in paths:
        figure.savefig(path, dpi=150, bbox_inches="tight")
    return paths


def _stacked_bars(table: dict[str, dict[str, int]], categories: list[str], share: bool, title: str) -> Figure:
    statuses = list(table)
    used = [c for c in categories if any(table[s].get(c, 0) for s in statuses)]
    totals = np.array([sum(table[s].values()) for s in statuses], dtype=float)
    colours = _colours(categories)
    figure = Figure(figsize=(max(6.0, 1.3 * len(statuses) + 4), 4.8))
    axes = figure.subplots()
    bottom = np.zeros(len(statuses))
    labels = [f"{s}\n(n={int(t)})" for s, t in zip(statuses, totals)] if share else statuses
    for category in used:
        values = np.array([table[s].get(category, 0) for s in statuses], dtype=float)
        if share:
            values = np.divide(values * 100, totals, out=np.zeros_like(values), where=totals > 0)
        axes.bar(labels, values, bottom=bottom, label=category, color=colours[category], edgecolor="white", width=0.7)
        bottom += values
    if not share:
        for index, total in enumerate(totals):
            axes.text(index, total, f"{int(total)}", ha="center", va="bottom", fontsize=9)
        axes.set_ylim(0, max(totals.max(initial=0) * 1.1, 1))
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("share of failed trajectories (%)" if share else "failed trajectories")
    axes.set_xlabel("exit status")
    axes.set_title(title)
    axes.tick_params(axis="x", labelrotation=20)
    axes.spines[["top", "right"]].set_visible(False)
    handles, labels = axes.get_legend_handles_labels()
    axes.legend(handles[::-1], labels[::-1], title="category", loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return figure


def _heatmap(table: dict[str, dict[str, int]], categories: list[str], max_repositories: int) -> Figure:
    ranked = sorted(table, key=lambda repo: (-sum(table[repo].values()), repo))
    shown, folded = ranked[:max_repositories], ranked[max_repositories:]
    columns = {repo: table[repo] for repo in shown}
    if folded:
        columns[OTHER_REPOSITORIES] = {c: sum(table[repo].get(c, 0) for repo in folded) for c in categories}
    used = [c for c in categories if any(column.get(c, 0) for column in columns.values())]
    matrix = np.array([[columns[repo].get(c, 0) for repo in columns] for c in used], dtype=float)
    figure = Figure(figsize=(max(6.0, 0.55 * len(columns) + 3.5), max(3.0, 0.45 * len(used) + 2)))
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues", aspect="auto", vmin=0)
    totals = [sum(column.values()) for column in columns.values()]
    axes.set_xticks(range(len(columns)), [f"{repo} ({n})" for repo, n in zip(columns, totals)], rotation=45, ha="right")
    axes.set_yticks(range(len(used)), used)
    threshold = matrix.max(initial=0) / 2
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            value = int(matrix[row, column])
            if value:
                colour = "white" if value > threshold else "black"
                axes.text(column, row, str(value), ha="center", va="center", fontsize=8, color=colour)
    axes.set_title(f"Failure categories by repository (n={sum(totals)})")
    axes.set_xlabel("repository (failed trajectories)")
    colorbar = figure.colorbar(image, ax=axes, label="failed trajectories", shrink=0.8)
    colorbar.locator = MaxNLocator(integer=True)
    colorbar.update_ticks()
    return figure


def write_charts(results: dict[str, Any], output_dir: Path, max_repositories: int = 30) -> list[Path]:
    """All charts of one results JSON; returns the files written."""
    summary = results["summary"]
    categories = list(summary["categories"])
    by_status = summary["category_by_exit_status"]
    by_repository = summary["category_by_repository"]
    if not by_status:
        return []
    n = summary["trajectories"]
    paths = _save(_stacked_bars(by_status, categories, False, f"Failure categories by exit status (n={n})"), output_dir, BY_STATUS)
    paths += _save(
        _stacked_bars(by_status, categories, True, f"Failure categories by exit status, as shares (n={n})"),
        output_dir,
        BY_STATUS_SHARE,
    )
    paths += _save(_heatmap(by_repository, categories, max_repositories), output_dir, BY_REPOSITORY)
    return paths
