"""The README.md every analysis writes into its output folder, so a reader of the folder needs neither code nor log:
what each file and figure is, the command and settings that made them, the groups and their counts, and the date.
"""

from __future__ import annotations

import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from sweagent.utils.files import write_text_atomic

README = "README.md"
TABLES = {
    "frechet.csv": "Fréchet distance per group and turn",
    "kl.csv": "Gaussian KL(group ‖ reference) per group and turn",
    "mmd.csv": "MMD² per group and turn, with the permutation p-value",
    "trajectory_level.csv": "every metric per group on one vector per trajectory (the mean of its turn embeddings)",
    "turn_counts.csv": "per group and turn: trajectories that reach it (`trajectories`) and the share of those turns "
    "the expert took (`expert_share`)",
    "manifest.json": "every setting, count, model, cache file and package version of this run, machine-readable",
}
COLUMNS = (
    "Per-turn CSV columns: `n_group`/`n_reference` trajectories reaching the turn, `estimate_all_rollouts` (every "
    "rollout at once), then statistics of the valid paired-bootstrap `replicates`: `mean`, `median`, `sd`, `ci_low`/"
    "`ci_high` (2.5th/97.5th percentiles), `min`/`max`. A turn is compared only when both sides have at least "
    "`metrics.min_samples_per_turn` trajectories there."
)


def _groups_table(manifest: dict[str, Any], styles: dict[str, str]) -> list[str]:
    instances = len(manifest["shared_instances"])
    reference = manifest["config"]["reference"]
    lines = [
        "| group | colour in figures | run directories | role of plain steps | instances | trajectories | empty, skipped |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, group in manifest["groups"].items():
        shown = f"**{name}** (reference)" if name == reference else name
        dirs = ", ".join(f"`{path}`" for path in group["run_dirs"])
        lines.append(
            f"| {shown} | {styles.get(name, '-')} | {dirs} | {group['default_role']} | {instances} | "
            f"{group['trajectories_used']} | {len(group['empty_skipped'])} |"
        )
    return lines


def write_readme(output_dir: Path, manifest: dict[str, Any], figures: dict[Path, str], styles: dict[str, str]) -> Path:
    """`<output_dir>/README.md` from the run's manifest and {figure file: what it shows}; `styles`: group → colour."""
    config = manifest["config"]
    length = manifest["reference_length"]
    command = shlex.join(manifest["command"]) if manifest.get("command") else "(called from Python: `run_analysis`)"
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Covariate shift analysis",
        "",
        f"Made {created} by `covariate_shift_analysis` (see its README in the OEC repository). Each group's trajectories "
        f"are embedded turn by turn ({manifest['embedding']['model']}, {manifest['embedding']['dimension']} dimensions) and "
        f"compared with the reference group **{config['reference']}** at every turn over "
        f"{len(manifest['shared_instances'])} instances that every group has.",
        "",
        "## Groups",
        "",
        *_groups_table(manifest, styles),
        "",
        f"The reference's trajectories have a median length of {length['median']:g} turns (SD {length['sd']:.1f}); "
        f"curves stop at turn {length['plot_cut']:.1f} (median + 1 SD), past which few trajectories are left.",
        "",
        "## Figures (each as PNG and PDF)",
        "",
    ]
    stems: dict[str, str] = {}
    for path, description in figures.items():
        stems.setdefault(str(path.relative_to(output_dir).with_suffix("")), description)
    lines += [f"- `{stem}.png` / `.pdf`: {description}." for stem, description in stems.items()] or ["(none: `figures: none`)"]
    lines += ["", "## Tables", ""]
    lines += [f"- `{name}`: {text}." for name, text in TABLES.items()]
    lines += [
        "",
        COLUMNS,
        "",
        "## How this was made",
        "",
        "```bash",
        command,
        "```",
        "",
        "With these settings (save them as a YAML file and pass `--config FILE` to rerun):",
        "",
        "```yaml",
        yaml.safe_dump(config, sort_keys=False, allow_unicode=True).rstrip(),
        "```",
        "",
    ]
    path = output_dir / README
    write_text_atomic(path, "\n".join(lines))
    return path
