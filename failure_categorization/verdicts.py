"""One verdict file per judged trajectory (`<output_dir>/verdicts/<traj_id>.json`), the unit of resume.

A verdict is reused by a rerun only if it is not an `analysis_error` and was made by the same judge (same model,
sampling, prompt limits and taxonomy); everything else is asked again.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

from sweagent.utils.files import write_json_atomic

VERDICTS_DIR = "verdicts"


class Usage(BaseModel):
    calls: int = 0
    """Requests sent to the judge, failed ones included."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    """USD as litellm prices the model; 0 for local servers and unpriced models."""

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost=self.cost + other.cost,
        )


class SampleRecord(BaseModel):
    """One of the K answers; `error` is set (and `category` is analysis_error) when the call failed."""

    category: str
    description: str = ""
    raw_category: str | None = None
    flagged: bool = False
    error: str | None = None


class Judgement(BaseModel):
    category: str
    description: str = ""
    flagged: bool = False
    """An answer named a category outside the taxonomy (recorded as the fallback category)."""
    agreement: float | None = None
    """Share of the successful samples that chose `category`; None when no sample succeeded."""
    samples: list[SampleRecord]
    usage: Usage
    error: str | None = None
    """Why the judge could not be asked (category analysis_error)."""


class Verdict(Judgement):
    traj_id: str
    instance_id: str
    repository: str
    exit_status: str
    trajectory_file: str
    judge_model: str
    judge_fingerprint: str


def verdict_path(output_dir: Path, traj_id: str) -> Path:
    return output_dir / VERDICTS_DIR / f"{traj_id}.json"


def save_verdict(output_dir: Path, verdict: Verdict) -> None:
    write_json_atomic(verdict_path(output_dir, verdict.traj_id), verdict.model_dump(mode="json"))


def load_verdict(output_dir: Path, traj_id: str) -> Verdict | None:
    """The stored verdict, or None when there is none or it cannot be read (it is then simply asked again)."""
    path = verdict_path(output_dir, traj_id)
    try:
        return Verdict.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError):
        return None
