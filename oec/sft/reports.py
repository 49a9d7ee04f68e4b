"""Eval reports, `<eval>/<traj_id>/report.json` in SWE-smith's format, read for one fact: was it resolved."""

from __future__ import annotations

import json
from pathlib import Path

from oec.sft.errors import SFTError

REPORT_FILE = "report.json"


def report_files(eval_dir: str | Path) -> dict[str, Path]:
    """traj id → report file, for every `<eval>/<traj_id>/report.json` in an eval directory."""
    eval_dir = Path(eval_dir)
    if not eval_dir.is_dir():
        raise SFTError(f"{eval_dir}: eval directory does not exist (option --evals)")
    return {child.name: child / REPORT_FILE for child in sorted(eval_dir.iterdir()) if (child / REPORT_FILE).is_file()}


def read_resolved(path: Path) -> bool:
    """`resolved` of a report; SWE-bench's `{instance_id: report}` wrapping and timed-out runs are understood."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SFTError(f"{path}: cannot read the eval report ({exc})") from None
    if isinstance(report, dict) and "resolved" not in report and len(report) == 1:
        report = next(iter(report.values()))
    if isinstance(report, dict) and "resolved" not in report and report.get("timed_out") is True:
        return False
    if not isinstance(report, dict) or not isinstance(report.get("resolved"), bool):
        raise SFTError(f"{path}: key 'resolved': expected true or false (SWE-smith report format)")
    return report["resolved"]
