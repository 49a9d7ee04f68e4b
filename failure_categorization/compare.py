"""How far two judges agree on the same trajectories: raw agreement, Cohen's kappa and the confusion table.

Trajectories are matched by traj id; those either judge could not analyse (analysis_error) are left out, since an
API failure says nothing about the judge's opinion.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from sklearn.metrics import cohen_kappa_score

from failure_categorization.errors import CategorizationError
from failure_categorization.taxonomy import ANALYSIS_ERROR


def load_categories(path: Path) -> tuple[str, dict[str, str]]:
    """(judge model, {traj_id: category}) from a results JSON written by `categorize`."""
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CategorizationError(f"{path}: results file does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CategorizationError(f"{path}: not valid JSON ({exc})") from None
    entries = results.get("trajectories") if isinstance(results, dict) else None
    if not isinstance(entries, list):
        raise CategorizationError(f"{path}: key 'trajectories': expected a list (a failure_categories.json)")
    categories = {}
    for index, row in enumerate(entries):
        if not isinstance(row, dict) or not isinstance(row.get("traj_id"), str) or not isinstance(row.get("category"), str):
            raise CategorizationError(f"{path}: key 'trajectories.{index}': expected an object with traj_id and category")
        categories[row["traj_id"]] = row["category"]
    model = results.get("summary", {}).get("judge", {}).get("model", path.stem)
    return str(model), categories


def compare(first: Path, second: Path) -> dict[str, Any]:
    model_a, a = load_categories(first)
    model_b, b = load_categories(second)
    common = sorted(set(a) & set(b))
    both = [t for t in common if a[t] != ANALYSIS_ERROR and b[t] != ANALYSIS_ERROR]
    labels_a = [a[t] for t in both]
    labels_b = [b[t] for t in both]
    kappa: float | None = None
    if both:
        value = float(cohen_kappa_score(labels_a, labels_b))
        kappa = None if math.isnan(value) else value  # undefined when both judges used a single category
    confusion = Counter(zip(labels_a, labels_b))
    return {
        "judges": [{"results": str(first), "model": model_a}, {"results": str(second), "model": model_b}],
        "common_trajectories": len(common),
        "compared": len(both),
        "left_out_analysis_errors": len(common) - len(both),
        "only_in_first": len(set(a) - set(b)),
        "only_in_second": len(set(b) - set(a)),
        "agreement": sum(x == y for x, y in zip(labels_a, labels_b)) / len(both) if both else None,
        "cohen_kappa": kappa,
        "confusion": [{"first": x, "second": y, "count": n} for (x, y), n in sorted(confusion.items())],
        "disagreements": [{"traj_id": t, "first": a[t], "second": b[t]} for t in both if a[t] != b[t]],
    }
