"""The oracle expert fixes real demo instances from whatever state the student left, in any tool format."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from oec.evaluation.reports import read_report
from oec.evaluation.run import evaluate_run
from sweagent.instance import load_instances
from sweagent.run.config_loading import build_config
from sweagent.run.run_batch import RunBatchConfig, run_batch
from sweagent.trajectory import load_trajectory, traj_path

REPO = Path(__file__).resolve().parents[1]
INSTANCES = REPO / "config/demo/instances.json"
BUNDLES = [{"path": "tools/registry"}, {"path": "tools/edit_anthropic"}, {"path": "tools/submit"}]
pytestmark = pytest.mark.slow


def one_per_repo() -> list[str]:
    chosen: dict[str, str] = {}
    for instance in load_instances(INSTANCES):
        chosen.setdefault(instance.repo, instance.instance_id)
    return sorted(chosen.values())


def run_student_then_oracle(tmp_path: Path, student_outputs: list, switch_step: int, expert_tools: dict | None = None):
    (tmp_path / "student.yaml").write_text(yaml.safe_dump(student_outputs))
    ids = one_per_repo()
    expert = {"model": {"type": "oracle", "instances_path": str(INSTANCES)}}
    if expert_tools:
        expert["tools"] = expert_tools
    data = {"agent": {"templates": {"system_template": "{{command_docs}}\n{{format_instructions}}"},
                      "tools": {"bundles": BUNDLES, "parse_function": {"type": "xml_function_calling"}},
                      "model": {"type": "switching",
                                "models": [{"model": {"type": "replay", "replay_path": str(tmp_path / "student.yaml"), "name": "student"}}, expert],
                                "switch": {"type": "step_count", "step": switch_step}}},
            "instances": {"path": str(INSTANCES), "filter": "^(" + "|".join(ids) + ")$"},
            "output_dir": str(tmp_path / "run"), "num_workers": 2}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    counts = run_batch(build_config(RunBatchConfig, [tmp_path / "c.yaml"], []))
    assert counts == {"submitted": len(ids)}
    result = evaluate_run(tmp_path / "run", instances_file=INSTANCES, eval_dir=tmp_path / "eval", workers=2)
    reports = {iid: read_report(tmp_path / "eval" / iid / "report.json") for iid in ids}
    return ids, reports, result


def test_oracle_resolves_after_a_student_that_broke_things(tmp_path):
    instances = {i.instance_id: i for i in load_instances(INSTANCES)}
    # the student edits a source file of the bug and leaves a junk script behind
    sabotage = ("<function=bash><parameter=command>git diff --name-only HEAD~1 -- . ':!*test*' > /dev/null; "
                "for f in $(git ls-files '*.py' | grep -v test | head -1); do echo 'broken = (' >> $f; done; "
                "echo 'print(1)' > repro.py</parameter></function>")
    ids, reports, _ = run_student_then_oracle(tmp_path, [sabotage, "<function=bash><parameter=command>ls</parameter></function>"], 2)
    for iid in ids:
        assert reports[iid].resolved, (iid, reports[iid])
        trajectory = load_trajectory(traj_path(tmp_path / "run", iid))
        assert trajectory.step_roles()[:2] == ["student", "student"]
        assert {s.model_name for s in trajectory.trajectory[2:]} == {"oracle"}
        assert "repro.py" not in trajectory.info.submission
        assert instances[iid].FAIL_TO_PASS


def test_oracle_speaks_native_function_calling_when_the_expert_uses_it(tmp_path):
    expert_tools = {"bundles": [{"path": "tools/registry"}, {"path": "tools/edit_anthropic"}, {"path": "tools/review_on_submit_m"}],
                    "parse_function": {"type": "function_calling"}}
    ids, reports, _ = run_student_then_oracle(tmp_path, [], 0, expert_tools)
    for iid in ids:
        assert reports[iid].resolved, (iid, reports[iid])
        trajectory = load_trajectory(traj_path(tmp_path / "run", iid))
        assert all(m.tool_calls for m in trajectory.assistant_messages())
        assert trajectory.info.oec.switched_at_step == 0
