"""Instance sources of run-batch: files, local datasets, filters, slices and seeded shuffles; merge-preds."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from sweagent.instance import InstanceError, load_instances
from sweagent.run.batch_instances import BatchInstanceSourceConfig
from sweagent.run.merge_preds import main as merge_preds_main

INSTANCES = Path(__file__).resolve().parents[1] / "config/demo/instances.json"


def ids(config: BatchInstanceSourceConfig) -> list[str]:
    return [instance.instance_id for instance in config.load()]


def test_filter_slice_and_seeded_shuffle():
    everything = ids(BatchInstanceSourceConfig(path=str(INSTANCES)))
    toolz = ids(BatchInstanceSourceConfig(path=str(INSTANCES), filter="^pytoolz__toolz"))
    assert toolz and all(i.startswith("pytoolz__toolz.") for i in toolz) and len(toolz) < len(everything)
    assert ids(BatchInstanceSourceConfig(path=str(INSTANCES), slice="2:5")) == everything[2:5]
    shuffled = ids(BatchInstanceSourceConfig(path=str(INSTANCES), shuffle=True, shuffle_seed=3))
    assert sorted(shuffled) == sorted(everything) and shuffled != everything
    assert shuffled == ids(BatchInstanceSourceConfig(path=str(INSTANCES), shuffle=True, shuffle_seed=3))


def test_a_local_dataset_folder_works_offline(tmp_path):
    rows = [instance.model_dump(mode="json") for instance in load_instances(INSTANCES)[:3]]
    for row in rows:  # as SWE-bench/SWE-smith datasets on the Hub store them: JSON-encoded text
        row["source"], row["FAIL_TO_PASS"] = json.dumps(row["source"]), json.dumps(row["FAIL_TO_PASS"])
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "ds"))
    config = BatchInstanceSourceConfig(type="huggingface", path=str(tmp_path / "ds"), split="test")
    loaded = config.load()
    assert [i.instance_id for i in loaded] == [r["instance_id"] for r in rows]
    assert loaded[0].source.package and loaded[0].FAIL_TO_PASS == load_instances(INSTANCES)[0].FAIL_TO_PASS


def test_bad_sources_fail_with_one_line(tmp_path):
    with pytest.raises(InstanceError, match="instances.slice"):
        BatchInstanceSourceConfig(path=str(INSTANCES), slice="a:b").load()
    with pytest.raises(InstanceError, match="instances.filter"):
        BatchInstanceSourceConfig(path=str(INSTANCES), filter="(").load()
    with pytest.raises(InstanceError, match="the step of '::0' must not be 0"):
        BatchInstanceSourceConfig(path=str(INSTANCES), slice="::0").load()
    with pytest.raises(InstanceError, match="does not exist"):
        BatchInstanceSourceConfig(path=str(tmp_path / "nope.json")).load()
    first = json.loads(INSTANCES.read_text(encoding="utf-8"))[0]
    twice = tmp_path / "twice.jsonl"
    twice.write_text("\n".join(json.dumps(row) for row in (first, first)))
    with pytest.raises(InstanceError, match=f"{twice}: instance_id '{first['instance_id']}' is listed twice"):
        BatchInstanceSourceConfig(path=str(twice)).load()


def test_merge_preds_combines_run_directories(tmp_path, capsys):
    for run, traj_id in (("a", "x__r0"), ("b", "x__r1")):
        folder = tmp_path / run / traj_id
        folder.mkdir(parents=True)
        (folder / f"{traj_id}.pred").write_text(json.dumps({"instance_id": "x", "model_name_or_path": "m", "model_patch": "d", "traj_id": traj_id}))
    assert merge_preds_main([str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(tmp_path / "preds.json")]) == 0
    assert sorted(json.loads((tmp_path / "preds.json").read_text())) == ["x__r0", "x__r1"]
    assert merge_preds_main([str(tmp_path / "missing")]) == 2
