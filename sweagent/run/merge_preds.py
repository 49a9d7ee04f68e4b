"""`sweagent merge-preds DIR... [--output FILE]`: one preds.json from the .pred files of run directories.

An unreadable .pred file is skipped and named on one line of stderr; the others are still merged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sweagent.predictions import PREDS_FILE, PredictionError, merge_predictions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sweagent merge-preds", description=__doc__)
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories holding <id>/<id>.pred files")
    parser.add_argument("--output", type=Path, default=None, help=f"default: <first run dir>/{PREDS_FILE}")
    args = parser.parse_args(argv)
    missing = [str(d) for d in args.run_dirs if not d.is_dir()]
    if missing:
        print(f"sweagent merge-preds: run directory does not exist: {', '.join(missing)}", file=sys.stderr)
        return 2
    output = args.output or args.run_dirs[0] / PREDS_FILE
    try:
        merged = merge_predictions(args.run_dirs, output)
    except PredictionError as exc:
        print(f"sweagent merge-preds: {exc}", file=sys.stderr)
        return 2
    if skipped := merged.unreadable_line():
        print(f"sweagent merge-preds: {skipped}", file=sys.stderr)
    print(f"merged {len(merged.predictions)} predictions into {output}")
    return 0
