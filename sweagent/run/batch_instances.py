"""`instances:` of a batch run: SWE-smith JSON/JSONL files or a `datasets` dataset, filtered, sliced, shuffled."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from sweagent.instance import InstanceError, TaskInstance, load_instances, parse_instances


class BatchInstanceSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["file", "huggingface"] = "file"
    """`file`: a SWE-smith JSON list or JSONL; `huggingface`: a `datasets` name or a local dataset folder."""
    path: str = "config/demo/instances.json"
    """File path, dataset name (e.g. SWE-bench/SWE-smith) or path of a dataset saved with save_to_disk."""
    split: str = "train"
    """Dataset split (huggingface only)."""
    filter: str = ".*"
    """Keep instances whose id matches this regular expression."""
    slice: str = ":"
    """Python slice applied after filtering, e.g. `:10` or `5:20`."""
    shuffle: bool = False
    """Shuffle (before slicing) with `shuffle_seed`."""
    shuffle_seed: int = 42
    """Seed of the shuffle."""

    def load(self) -> list[TaskInstance]:
        """The instances to run, in order; an empty result is an error that says which setting emptied it."""
        selected = _parse_slice(self.slice)
        instances = self._read()
        if not instances:
            raise InstanceError(f"instances.path: '{self.path}' holds no instances")
        try:
            pattern = re.compile(self.filter)
        except re.error as exc:
            raise InstanceError(f"instances.filter: invalid regular expression '{self.filter}' ({exc})") from None
        instances = [instance for instance in instances if pattern.search(instance.instance_id)]
        if self.shuffle:
            random.Random(self.shuffle_seed).shuffle(instances)
        chosen = instances[selected]
        if not chosen:
            raise InstanceError(f"instances: none of the {len(instances)} instances matching filter '{self.filter}' "
                                f"is in slice '{self.slice}'" if instances else
                                f"instances.filter: no instance id matches '{self.filter}'")
        return chosen

    def _read(self) -> list[TaskInstance]:
        if self.type == "file":
            from sweagent.run.config_loading import resolve_config_path

            return load_instances(resolve_config_path(self.path))
        import datasets

        local = Path(self.path)
        try:
            if local.is_dir() and any((local / name).exists() for name in ("dataset_info.json", "dataset_dict.json")):
                dataset = datasets.load_from_disk(str(local))
                dataset = dataset[self.split] if isinstance(dataset, datasets.DatasetDict) else dataset
            else:
                dataset = datasets.load_dataset(self.path, split=self.split)
        except Exception as exc:
            raise InstanceError(f"instances.path: cannot load dataset '{self.path}' split '{self.split}' ({type(exc).__name__}: {exc})") from None
        return parse_instances(dataset, self.path)


def _parse_slice(text: str) -> slice:
    parts = text.split(":")
    if len(parts) > 3 or not all(part.strip().lstrip("-").isdigit() or part.strip() == "" for part in parts):
        raise InstanceError(f"instances.slice: expected a Python slice like ':10' or '5:20', got '{text}'")
    numbers = [int(part) if part.strip() else None for part in parts]
    if len(numbers) == 3 and numbers[2] == 0:
        raise InstanceError(f"instances.slice: the step of '{text}' must not be 0")
    if len(numbers) == 1:
        return slice(numbers[0], numbers[0] + 1 if numbers[0] is not None else None)
    return slice(*numbers)
