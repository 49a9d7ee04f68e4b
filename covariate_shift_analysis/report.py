"""Result files: one CSV per metric (per turn), the trajectory-level CSV, turn counts, and manifest.json."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from covariate_shift_analysis.bootstrap import SUMMARY_COLUMNS
from covariate_shift_analysis.metrics import METRICS
from sweagent.utils.files import write_json_atomic, write_text_atomic

CURVE_COLUMNS = ["group", "turn", "n_group", "n_reference", "estimate_all_rollouts", *SUMMARY_COLUMNS, "replicates"]
_VERSIONED = ["oec", "numpy", "scipy", "scikit-learn", "torch", "sentence-transformers", "transformers"]


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    write_text_atomic(path, frame.to_csv(index=False, float_format="%.6g"))
    return path


def write_metric_tables(turns: pd.DataFrame, trajectories: pd.DataFrame, counts: pd.DataFrame, output_dir: Path) -> list[Path]:
    """`<metric>.csv` per metric (p_value only for MMD², whose test it is), `trajectory_level.csv`, `turn_counts.csv`."""
    paths = []
    for metric in METRICS:
        columns = CURVE_COLUMNS + (["p_value"] if metric == "mmd" else [])
        paths.append(write_csv(turns.loc[turns["metric"] == metric, columns], output_dir / f"{metric}.csv"))
    trajectory_columns = ["metric", "group", *CURVE_COLUMNS[2:], "p_value"]
    paths.append(write_csv(trajectories[trajectory_columns], output_dir / "trajectory_level.csv"))
    paths.append(write_csv(counts, output_dir / "turn_counts.csv"))
    return paths


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_manifest(output_dir: Path, sections: dict[str, Any]) -> Path:
    """Every setting and count that produced the results, so a run can be reproduced and compared."""
    path = output_dir / "manifest.json"
    manifest = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": package_versions(), **sections}
    write_json_atomic(path, manifest)
    return path
