"""Predictions (`<traj_id>.pred`, `preds.json`) in the SWE-bench convention, plus a `traj_id` for rollouts.

`preds.json` maps traj id → prediction. With one rollout per instance the traj id is the instance id, so the file
is exactly what SWE-bench and SWE-smith tools read; with several rollouts each entry keeps the real `instance_id`.

The `.pred` files are the truth (each is written once its rollout ends); `preds.json` is derived from them, so a
reader that wants a run's predictions calls `sync_preds_json`, which rebuilds the file when it has fallen behind. One
unreadable `.pred` (a rollout killed mid-write, a hand edit) is skipped and reported, never fatal to a whole run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from sweagent.ids import InstanceId, TrajId, check_id
from sweagent.trajectory import split_traj_id
from sweagent.utils.errors import describe_validation_error
from sweagent.utils.files import write_json_atomic
from sweagent.utils.errors import OECError

PREDS_FILE = "preds.json"


class PredictionError(OECError):
    """A prediction file that cannot be read; the message names the file and the problem."""


class Prediction(BaseModel):
    model_config = ConfigDict(extra="allow")

    instance_id: InstanceId
    model_name_or_path: str = ""
    model_patch: str | None = ""
    traj_id: TrajId | None = None

    @property
    def key(self) -> str:
        return self.traj_id or self.instance_id


def write_prediction(path: str | Path, prediction: Prediction) -> None:
    write_json_atomic(path, prediction.model_dump(exclude_none=True))


def load_prediction(path: str | Path) -> Prediction:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        prediction = Prediction.model_validate(data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PredictionError(f"{path}: cannot read prediction ({exc})") from None
    except ValidationError as exc:
        raise PredictionError(f"{path}: {describe_validation_error(exc)}") from None
    if prediction.traj_id is None and path.stem != prediction.instance_id:
        prediction.traj_id = check_id(path.stem, f"{path.parent.parent}: .pred file name", PredictionError, traj=True)
    return prediction


@dataclass
class CollectedPredictions:
    predictions: dict[str, Prediction] = field(default_factory=dict)
    """Keyed by traj id."""
    unreadable: list[str] = field(default_factory=list)
    """One message (path and problem) per `.pred` file that was skipped."""
    newest_ns: int = 0
    """Latest modification time of the `.pred` files read, in nanoseconds."""

    def unreadable_line(self) -> str | None:
        """The one line that says which `.pred` files were skipped and why (None when none were)."""
        if not self.unreadable:
            return None
        return f"skipped {len(self.unreadable)} unreadable .pred file(s): " + "; ".join(self.unreadable)


def collect_predictions(run_dirs: list[str | Path]) -> CollectedPredictions:
    """All `<run>/<traj_id>/<traj_id>.pred` files of some run directories (later ones win), unreadable ones skipped."""
    collected = CollectedPredictions()
    for run_dir in run_dirs:
        for pred_path in sorted(Path(run_dir).glob("*/*.pred")):
            if pred_path.parent.name != pred_path.stem:
                continue
            try:
                prediction = load_prediction(pred_path)
                collected.newest_ns = max(collected.newest_ns, pred_path.stat().st_mtime_ns)
            except (PredictionError, OSError) as exc:
                collected.unreadable.append(" ".join(str(exc).split()))
                continue
            collected.predictions[prediction.key] = prediction
    return collected


def load_preds_json(path: str | Path) -> dict[str, Prediction]:
    """Read a `preds.json` (a dict keyed by id, or a list as some SWE-bench tools write)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PredictionError(f"{path}: cannot read predictions ({exc})") from None
    if not isinstance(data, (dict, list)):
        raise PredictionError(f"{path}: expected an object keyed by id or a list of predictions")
    predictions: dict[str, Prediction] = {}
    for index, row in enumerate(data.values() if isinstance(data, dict) else data):
        try:
            prediction = Prediction.model_validate(row)
        except ValidationError as exc:
            raise PredictionError(f"{path}: entry {index}: {describe_validation_error(exc)}") from None
        predictions[prediction.key] = prediction
    return predictions


def write_preds_json(output: str | Path, predictions: dict[str, Prediction]) -> None:
    write_json_atomic(output, {key: p.model_dump(exclude_none=True) for key, p in sorted(predictions.items())})


def merge_predictions(run_dirs: list[str | Path], output: str | Path) -> CollectedPredictions:
    """Merge the `.pred` files of one or more run directories into `output` (atomically), skipping unreadable ones."""
    collected = collect_predictions(run_dirs)
    write_preds_json(output, collected.predictions)
    return collected


@dataclass
class SyncedPredictions:
    collected: CollectedPredictions
    predictions: dict[str, Prediction]
    """What a reader should use: what `preds.json` holds once it is current (rebuilt if it was not), or holds as it is
    when the run has no readable `.pred` file."""
    stale: str | None = None
    """One line saying why `preds.json` was rebuilt and what that changed (None when it was current or missing)."""


def _some(keys: set[str], limit: int = 5) -> str:
    names = sorted(keys)
    return ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _differences(old: dict[str, Prediction], new: dict[str, Prediction]) -> str:
    """What changed between two sets of predictions, e.g. `2 added (a, b), 1 changed (c)`."""
    kinds = {
        "added": new.keys() - old.keys(),
        "removed": old.keys() - new.keys(),
        "changed": {key for key in old.keys() & new.keys() if old[key] != new[key]},
    }
    return ", ".join(f"{len(keys)} {kind} ({_some(keys)})" for kind, keys in kinds.items() if keys) or "no prediction changed"


def _staleness(preds_file: Path, collected: CollectedPredictions) -> tuple[str | None, dict[str, Prediction]]:
    """Why an existing `preds.json` no longer matches the `.pred` files (None if it does), and what it holds."""
    try:
        listed = load_preds_json(preds_file)
    except PredictionError as exc:
        return str(exc), {}
    if collected.newest_ns > preds_file.stat().st_mtime_ns:
        return f"{preds_file} is older than some of its .pred files", listed
    if listed.keys() != collected.predictions.keys():
        return f"{preds_file} holds other traj ids than its .pred files", listed
    return None, listed


def sync_preds_json(run_dir: str | Path) -> SyncedPredictions:
    """A run's predictions, with `<run>/preds.json` rebuilt from the `.pred` files when it is missing, unreadable,
    older than one of them or holds another set of traj ids; a run without `.pred` files keeps its preds.json."""
    preds_file = Path(run_dir) / PREDS_FILE
    collected = collect_predictions([run_dir])
    if not collected.predictions:
        return SyncedPredictions(collected, load_preds_json(preds_file) if preds_file.is_file() else {})
    if not preds_file.is_file():
        write_preds_json(preds_file, collected.predictions)
        return SyncedPredictions(collected, collected.predictions)
    stale, listed = _staleness(preds_file, collected)
    if stale is None:
        return SyncedPredictions(collected, listed)
    write_preds_json(preds_file, collected.predictions)
    line = f"{stale}: rebuilt it from them ({_differences(listed, collected.predictions)})"
    return SyncedPredictions(collected, collected.predictions, line)


def instance_id_of(prediction: Prediction) -> str:
    """The task instance a prediction is for, even when its traj id carries a rollout suffix."""
    return prediction.instance_id or split_traj_id(prediction.key)[0]
