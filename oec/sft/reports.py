"""Eval reports, `<eval>/<traj_id>/report.json` in SWE-smith's format, read for one fact: was it resolved."""

from __future__ import annotations

from pathlib import Path

from oec.evaluation.errors import EvaluationError
from oec.evaluation.reports import REPORT_FILE, read_report
from oec.sft.errors import SFTError
from sweagent.ids import check_id


def report_files(eval_dir: str | Path) -> dict[str, Path]:
    """traj id → report file, for every `<eval>/<traj_id>/report.json` in an eval directory."""
    eval_dir = Path(eval_dir)
    if not eval_dir.is_dir():
        raise SFTError(f"{eval_dir}: eval directory does not exist (option --evals)")
    return {check_id(child.name, f"{eval_dir}: report folder name", SFTError, traj=True): child / REPORT_FILE
            for child in sorted(eval_dir.iterdir()) if (child / REPORT_FILE).is_file()}


def read_resolved(path: Path) -> bool:
    """`resolved` of a report, read by the evaluation stage's own reader (SWE-smith and SWE-bench layouts)."""
    try:
        return read_report(path).resolved
    except EvaluationError as exc:
        raise SFTError(str(exc)) from None
