"""Predictions (`<traj_id>.pred`, `preds.json`) in the SWE-bench convention, plus a `traj_id` for rollouts.

`preds.json` maps traj id → prediction. With one rollout per instance the traj id is the instance id, so the file
is exactly what SWE-bench and SWE-smith tools read; with several rollouts each entry keeps the real `instance_id`.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from sweagent.trajectory import split_traj_id
from sweagent.utils.errors import describe_validation_error
from sweagent.utils.files import write_json_atomic

PREDS_FILE = "preds.json"


class PredictionError(ValueError):
    """A prediction file that cannot be read; the message names the file and the problem."""


class Prediction(BaseModel):
    model_config = ConfigDict(extra="allow")

    instance_id: str
    model_name_or_path: str = ""
    model_patch: str | None = ""
    traj_id: str | None = None

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
    except (OSError, json.JSONDecodeError) as exc:
        raise PredictionError(f"{path}: cannot read prediction ({exc})") from None
    except ValidationError as exc:
        raise PredictionError(f"{path}: {describe_validation_error(exc)}") from None
    if prediction.traj_id is None and path.stem != prediction.instance_id:
        prediction.traj_id = path.stem
    return prediction


def collect_predictions(run_dir: str | Path) -> dict[str, Prediction]:
    """All `<run>/<traj_id>/<traj_id>.pred` files of a run directory, keyed by traj id."""
    run_dir = Path(run_dir)
    predictions: dict[str, Prediction] = {}
    for pred_path in sorted(run_dir.glob("*/*.pred")):
        if pred_path.parent.name != pred_path.stem:
            continue
        prediction = load_prediction(pred_path)
        predictions[prediction.key] = prediction
    return predictions


def load_preds_json(path: str | Path) -> dict[str, Prediction]:
    """Read a `preds.json` (a dict keyed by id, or a list as some SWE-bench tools write)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PredictionError(f"{path}: cannot read predictions ({exc})") from None
    rows = data.values() if isinstance(data, dict) else data
    predictions: dict[str, Prediction] = {}
    for index, row in enumerate(rows):
        try:
            prediction = Prediction.model_validate(row)
        except ValidationError as exc:
            raise PredictionError(f"{path}: entry {index}: {describe_validation_error(exc)}") from None
        predictions[prediction.key] = prediction
    return predictions


def merge_predictions(run_dirs: list[str | Path], output: str | Path) -> dict[str, Prediction]:
    """Merge the `.pred` files of one or more run directories into `output` (atomically)."""
    merged: dict[str, Prediction] = {}
    for run_dir in run_dirs:
        merged.update(collect_predictions(run_dir))
    write_json_atomic(output, {key: p.model_dump(exclude_none=True) for key, p in sorted(merged.items())})
    return merged


def instance_id_of(prediction: Prediction) -> str:
    """The task instance a prediction is for, even when its traj id carries a rollout suffix."""
    return prediction.instance_id or split_traj_id(prediction.key)[0]
