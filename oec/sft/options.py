"""The options of the SFT conversion: one pydantic model, read from the command line, YAML files and dotted overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sweagent.trajectory import ModelRole

from oec.sft.filters import RepetitionFilter

Style = Literal["xml", "tool", "ticks"]
STYLE_PARSERS: dict[str, str] = {"xml": "xml_function_calling", "tool": "function_calling", "ticks": "thought_action"}
Observations = Literal["full", "as_seen"]


OUTPUT_SUFFIXES = {"train": ".jsonl", "validation": ".val.jsonl", "summary": ".summary.json",
                   "train_tokens": ".parquet", "validation_tokens": ".val.parquet"}


class ConvertOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs: list[str]
    """Run directories (`<run>/<traj_id>/<traj_id>.traj`)."""
    evals: list[str] = Field(default_factory=list)
    """Eval directories (`<eval>/<traj_id>/report.json`); one per run dir pairs them in order, else pooled."""
    output: Path
    """Train rows go here (JSONL); the other files are named after it."""
    instances: list[str] = Field(default_factory=list)
    """Instance files (SWE-smith JSON/JSONL) giving problem statements; else each trajectory's replay_config."""
    prompt_config: Path | None = None
    """The student's prompt (an agent config, or agent.templates and agent.tools); default: each run's recorded one."""
    style: Style | None = None
    """Answer format of the rows: xml, tool (native tool calls) or ticks; default: the prompt config's parser."""
    default_role: ModelRole = "expert"
    """Role of the steps of plain SWE-agent trajectories (no model_role recorded)."""
    resolved_only: bool = True
    """Keep only trajectories whose eval report says resolved (rejection sampling)."""
    mask_student: bool = True
    """Weight 0 on student turns; off for the baselines (imitation, rejection sampling)."""
    repetition: RepetitionFilter = Field(default_factory=RepetitionFilter)
    """Thresholds of the repetition filter."""
    max_per_instance: int | None = None
    """At most this many rows per instance (a seeded sample)."""
    val_fraction: float = Field(default=0.05, ge=0.0, lt=1.0)
    """Share of instances whose rows go to the validation file."""
    seed: int = 0
    """Seed of the per-instance sample and the split."""
    working_dir: str | None = None
    """Repository path shown in the prompt; default: the run's recorded `env.working_dir`, else /testbed."""
    observations: Observations = "full"
    """`full`: every observation as the agent recorded it; `as_seen`: after the student's history processors."""
    tokenizer: Path | None = None
    """Tokenizer folder or GGUF file for the tokenized Parquet export."""

    @field_validator("output")
    @classmethod
    def _jsonl_output(cls, output: Path) -> Path:
        if output.suffix != ".jsonl":
            raise ValueError("expected a path ending in .jsonl")
        return output

    def output_path(self, kind: str) -> Path:
        """The file of one output kind (see OUTPUT_SUFFIXES), named after `output`."""
        return Path(str(self.output).removesuffix(".jsonl") + OUTPUT_SUFFIXES[kind])
