"""What later stages wrote about a run, for the inspector: the SFT rows' turn weights, the judge's verdicts, and
the analysis outputs (plots, tables). Each reader reports what it could not read as one line and carries on."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from sweagent.inspector.index import folder_labels

VERDICTS_DIR = "verdicts"
"""Where the failure judge keeps one verdict file per trajectory (failure_categorization.verdicts.VERDICTS_DIR)."""


class Verdict(BaseModel):
    """The fields of the judge's verdict file (failure_categorization.verdicts.Verdict) that the inspector shows,
    read without importing the judge's package: it pulls in litellm, tens of seconds on a busy login node."""

    model_config = ConfigDict(extra="ignore")

    category: str
    description: str = ""
    agreement: float | None = None
    trajectory_file: str
    judge_model: str = ""

IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif")
DATA_SUFFIXES = (".csv", ".json", ".md", ".pdf", ".txt")
MAX_COPIED_BYTES = 20 * 1024 * 1024
"""Analysis files larger than this are linked by name only, never copied into a report."""


def _problem_line(path: Path, count: int, first: str) -> str:
    return f"{path}: skipped {count} unreadable entr{'y' if count == 1 else 'ies'} (first: {first})"


@dataclass
class SFTWeights:
    """Assistant-turn weights of every SFT row, by (source run, traj id) and by traj id alone."""

    by_run: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    by_traj_id: dict[str, list[list[int]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, row: object) -> None:
        """Record one row; raises ValueError when it is not an SFT row."""
        if not isinstance(row, dict) or not isinstance(row.get("traj_id"), str) or not isinstance(row.get("messages"), list):
            raise ValueError("expected an object with 'traj_id' and 'messages'")
        opening = row.get("opening_messages", 0)
        if not isinstance(opening, int) or isinstance(opening, bool):
            raise ValueError("'opening_messages' is not a message count")
        rollout = row["messages"][opening:]  # a demonstration's answers are not steps
        weights = [m.get("weight") for m in rollout if isinstance(m, dict) and m.get("role") == "assistant"]
        if any(weight not in (0, 1) for weight in weights):
            raise ValueError("an assistant message without a weight of 0 or 1")
        source = row.get("source_run")
        if isinstance(source, str):
            self.by_run[(str(Path(source).resolve()), row["traj_id"])] = weights
        self.by_traj_id.setdefault(row["traj_id"], []).append(weights)

    def weights_for(self, run_dir: Path, traj_id: str) -> list[int] | None:
        """The row of this rollout: matched by run dir and traj id, else by a traj id only one row has."""
        exact = self.by_run.get((str(run_dir.resolve()), traj_id))
        if exact is not None:
            return exact
        rows = self.by_traj_id.get(traj_id, [])
        return rows[0] if len(rows) == 1 else None


def load_sft_weights(files: list[Path]) -> SFTWeights:
    """Read SFT JSONL files (`convert_to_sft.sh` output); bad lines are skipped and counted per file."""
    weights = SFTWeights()
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            weights.problems.append(f"{path}: cannot read the SFT file ({exc})")
            continue
        bad: list[str] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                weights.add(json.loads(line))
            except (ValueError, RecursionError) as exc:
                bad.append(f"line {number}: {exc}")
        if bad:
            weights.problems.append(_problem_line(path, len(bad), bad[0]))
    return weights


@dataclass
class Verdicts:
    """The judge's verdicts by trajectory file (resolved), from failure-categorization output dirs."""

    by_file: dict[Path, Verdict] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def for_file(self, path: Path) -> Verdict | None:
        return self.by_file.get(path.resolve())


def load_verdicts(analysis_dirs: list[Path]) -> Verdicts:
    verdicts = Verdicts()
    for folder in analysis_dirs:
        files = sorted((folder / VERDICTS_DIR).glob("*.json"))
        bad: list[str] = []
        for path in files:
            try:
                verdict = Verdict.model_validate_json(path.read_bytes())
            except (OSError, ValidationError) as exc:
                bad.append(f"{path.name}: {' '.join(str(exc).split())[:200]}")
                continue
            verdicts.by_file[Path(verdict.trajectory_file).resolve()] = verdict
        if bad:
            verdicts.problems.append(_problem_line(folder / VERDICTS_DIR, len(bad), bad[0]))
    return verdicts


@dataclass(frozen=True)
class AnalysisFile:
    source: Path
    name: Path
    """Where it goes in a report: `<analysis dir name>/<path inside it>`."""
    is_image: bool
    copied: bool
    """False when it is too large to copy (the report names it only)."""


def analysis_files(analysis_dirs: list[Path]) -> list[AnalysisFile]:
    """The plots and tables of analysis output dirs (covariate shift, failure judge), verdict files left out."""
    found: list[AnalysisFile] = []
    for folder, label in folder_labels(analysis_dirs).items():
        for path in sorted(folder.rglob("*")):
            inside = path.relative_to(folder)
            if not path.is_file() or inside.parts[0] == VERDICTS_DIR or not path.name.endswith(IMAGE_SUFFIXES + DATA_SUFFIXES):
                continue
            found.append(AnalysisFile(path, Path(label) / inside, path.name.endswith(IMAGE_SUFFIXES),
                                      path.stat().st_size <= MAX_COPIED_BYTES))
    return found


@dataclass
class Extras:
    """Everything the inspector shows beside the trajectories themselves."""

    sft: SFTWeights = field(default_factory=SFTWeights)
    verdicts: Verdicts = field(default_factory=Verdicts)
    analysis: list[AnalysisFile] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return self.sft.problems + self.verdicts.problems


def load_extras(sft_files: list[Path], analysis_dirs: list[Path]) -> Extras:
    return Extras(load_sft_weights(sft_files), load_verdicts(analysis_dirs), analysis_files(analysis_dirs))
