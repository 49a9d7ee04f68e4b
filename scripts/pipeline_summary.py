"""Print where each output of scripts/run_pipeline.sh is, with the figures people look at first."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", type=Path)
    parser.add_argument("--seconds", type=int, default=None)
    args = parser.parse_args()
    out: Path = args.output
    print("\n=== OEC pipeline summary ===")
    for group in ("oec", "student", "expert"):
        summary = _json(out / "runs" / group / "eval" / "summary.json")
        if summary:
            print(f"{group:>8}: resolved {summary['resolved']}/{summary['total']}   runs: {out / 'runs' / group}")
    sft = _json(out / "sft" / "oec.summary.json")
    if sft:
        turns = sft.get("assistant_turns", {})
        print(f"     SFT: {sft['rows']['train']} train + {sft['rows']['validation']} validation rows, "
              f"{turns.get('trained', 0)} trained / {turns.get('masked', 0)} masked assistant turns -> {out / 'sft' / 'oec.jsonl'}")
        dropped = sft.get("dropped", {})
        if dropped:
            print(f"          dropped: {', '.join(f'{reason}={len(ids) if isinstance(ids, list) else ids}' for reason, ids in dropped.items())}")
    plots = sorted((out / "covariate_shift").rglob("*.png")) + sorted((out / "failures").rglob("*.png"))
    for folder, label in ((out / "covariate_shift", "covariate shift"), (out / "failures", "failure judge")):
        if folder.is_dir():
            print(f"{label:>16}: {folder}")
    if plots:
        print("plots (PNG + PDF):")
        for plot in plots:
            print(f"  {plot}")
    if args.seconds is not None:
        print(f"wall time: {args.seconds // 60} min {args.seconds % 60} s")


if __name__ == "__main__":
    main()
