"""`sweagent inspect`: the rollout index (every format, every unreadable input listed with its reason, fast
outlines equal to full loads), the step view (hand-overs, SFT weights) and the self-contained HTML report."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

from inspector_runs import HOSTILE, MINI_RESOLVED, COMMANDS, DemoRun, png, specs, write_demo_run
from oec.sft.synthetic import StepSpec, build_trajectory
from sweagent.inspector.cli import main
from sweagent.inspector.extras import load_extras, load_sft_weights
from sweagent.inspector.html_report import write_report
from sweagent.inspector.index import InspectError, build_index
from sweagent.inspector.steps import load_steps, printable
from sweagent.tools.parsing import ToolCall
from sweagent.trajectory import Handover, TrajectoryError, load_trajectory, load_trajectory_outline, traj_path


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoRun:
    return write_demo_run(tmp_path_factory.mktemp("inspect"))


@pytest.fixture(scope="module")
def report(demo: DemoRun, tmp_path_factory) -> Path:
    index = build_index([demo.run])
    extras = load_extras([demo.sft], [demo.analysis, demo.judge])
    return write_report(tmp_path_factory.mktemp("report") / "html", index, extras, "expert")


def test_the_index_shows_roles_switch_eval_and_cost_of_every_format(demo: DemoRun) -> None:
    rows = {rollout.traj_id: rollout for rollout in build_index([demo.run]).rollouts}
    corrected = rows["pkg__parse-1__r0"]
    assert (corrected.kind, corrected.file_format, corrected.switch_label) == ("student+expert", "OEC", "2 / 2")
    assert corrected.steps == {"student": 2, "expert": 3} and corrected.resolved is True and corrected.handovers == 1
    assert set(corrected.cost) == {"openai/student", "claude-3-7-sonnet-20250219"}
    assert rows["pkg__parse-1__r1"].handovers == 3
    student = rows["pkg__parse-2"]
    assert (student.kind, student.resolved_label, student.switch_label) == ("student only", "unresolved", "- / never")
    plain = rows["pkg__parse-3"]
    assert (plain.kind, plain.file_format, plain.switch_label) == ("expert only", "SWE-agent", "-")
    mini = rows[MINI_RESOLVED]
    assert (mini.kind, mini.file_format, mini.resolved_label) == ("expert only", "mini-swe-agent", "not evaluated")
    assert mini.exit_status == "submitted"
    assert mini.cost == {"deterministic": pytest.approx(0.05)} and mini.steps == {"student": 0, "expert": 4}
    assert "truncated" in rows["pkg__broken-1"].error and rows["pkg__broken-1"].kind == "unreadable"


def _write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def test_every_unreadable_input_is_a_row_with_its_reason_never_a_crash(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    good = build_trajectory("pkg__ok-1", [StepSpec("expert", ToolCall("submit", {}))], COMMANDS)
    good.save(traj_path(run, "pkg__ok-1"))
    _write(run / "eval" / "pkg__ok-1" / "report.json", "{not json")
    bad_role = good.to_json_dict()
    bad_role["trajectory"][0]["model_role"] = "teacher"
    cases = {"pkg__list-1": "[1, 2]", "pkg__empty-1": "", "pkg__binary-1": b"\xff\xfe\x00garbage",
             "pkg__role-1": json.dumps(bad_role, indent=2), "pkg__deep-1": "[" * 100_000,
             "bad name!": json.dumps(good.to_json_dict())}
    for traj_id, text in cases.items():
        _write(traj_path(run, traj_id), text)
    _write(run / "pkg__mini-2" / "pkg__mini-2.traj.json", json.dumps({"messages": [], "trajectory_format": "mini-swe-agent-9"}))
    _write(run / "pkg__mini-3" / "pkg__mini-3.traj.json", json.dumps({"messages": ["hello"], "info": {}}))
    index = build_index([run])
    rows = {rollout.traj_id: rollout for rollout in index.rollouts}
    assert rows["pkg__ok-1"].error is None and "cannot read the eval report" in rows["pkg__ok-1"].report_error
    reasons = {traj_id: rows[traj_id].error for traj_id in rows if traj_id != "pkg__ok-1"}
    assert all(reasons.values()), reasons
    assert "expected a JSON object with a 'trajectory' list" in reasons["pkg__list-1"]
    assert "not valid JSON" in reasons["pkg__empty-1"] and "not valid JSON" in reasons["pkg__binary-1"]
    assert "model_role" in reasons["pkg__role-1"] and "not valid JSON" in reasons["pkg__deep-1"]
    assert reasons["bad name!"].startswith("folder name: expected a traj id")
    assert "mini-swe-agent-9" in reasons["pkg__mini-2"] and "messages[0]" in reasons["pkg__mini-3"]
    for rollout in index.rollouts:
        assert (load_steps(rollout, load_sft_weights([]), "expert").error is None) == (rollout.traj_id == "pkg__ok-1")
    assert main([str(run), "--list"]) == 0 and "pkg__deep-1" in capsys.readouterr().out
    page = write_report(tmp_path / "html", index, load_extras([], []), "expert").read_text()
    assert page.count('class="rollout unreadable"') == len(reasons) and "bad name!" in page


def _layouts(trajectory_dict: dict) -> list[bytes]:
    """The same trajectory as `save` writes it, compact, and in another key order (others' writers)."""
    reordered = {"info": trajectory_dict["info"], **{k: v for k, v in trajectory_dict.items() if k != "info"}}
    return [json.dumps(trajectory_dict, indent=2).encode(), json.dumps(trajectory_dict).encode(),
            json.dumps(reordered, indent=2).encode()]


@pytest.mark.parametrize("roles", ["sseee", "sesee", "sss", "ppp", "", "e"])
def test_the_outline_of_a_trajectory_is_what_a_full_load_reads(tmp_path: Path, roles: str) -> None:
    step_specs = [StepSpec({"s": "student", "e": "expert", "p": None}[letter], ToolCall("bash", {"command": f"echo {i}"}),
                      '"\n      "model_role": "expert",\n' * 2, f"thought {i}") for i, letter in enumerate(roles)]
    saved = build_trajectory("pkg__x-1", step_specs, COMMANDS).to_json_dict()
    for step in saved["trajectory"]:  # as the agent records it: every step carries the messages it was shown
        step["query"] = saved["history"][:4]
    for number, raw in enumerate(_layouts(saved)):
        path = tmp_path / str(number) / "pkg__x-1" / "pkg__x-1.traj"
        _write(path, raw)
        outline, full = load_trajectory_outline(path, "student"), load_trajectory(path, "student")
        assert outline.step_roles() == full.step_roles()
        assert [s.model_name for s in outline.trajectory] == [s.model_name for s in full.trajectory]
        assert outline.info == full.info
        for cut in range(1, len(raw), max(1, len(raw) // 25)):
            _write(path, raw[:cut])
            with pytest.raises(TrajectoryError):
                load_trajectory_outline(path)


def test_steps_mark_every_hand_over_and_carry_the_sft_weights(demo: DemoRun) -> None:
    rows = {rollout.traj_id: rollout for rollout in build_index([demo.run]).rollouts}
    sft = load_sft_weights([demo.sft])
    loaded = load_steps(rows["pkg__parse-1__r0"], sft, "expert")
    corrected = loaded.steps
    assert [step.weight for step in corrected] == [0, 0, 1, 1, 1]
    labels = [step.handover.label if step.handover else None for step in corrected]
    assert labels == [None, None, "student → expert", None, None]
    window = load_steps(rows["pkg__parse-1__r1"], sft, "expert").steps
    assert [step.index for step in window if step.handover] == [1, 2, 3] and window[2].handover.to_role == "student"
    assert [step.weight for step in load_steps(rows["pkg__parse-3"], sft, "expert").steps] == [1, 1, 1]
    assert all(step.weight is None for step in load_steps(rows["pkg__parse-2"], sft, "expert").steps)  # dropped: unresolved
    assert "\x1b" not in corrected[1].observation and "\\x1b[2J" in corrected[1].observation
    assert "returns the wrong id for tags in pkg__parse-1" in loaded.problem_statement
    assert printable("a\tb\nc\x07\x9b") == "a\tb\nc\\x07\\x9b"


def test_a_hand_over_before_the_first_step_is_shown_with_its_reason(tmp_path: Path) -> None:
    trajectory = build_trajectory("pkg__stuck-1", specs("ee"), COMMANDS)  # the student failed before acting
    trajectory.info.oec.handovers = [Handover(step=0, from_role="student", to_role="expert",
                                              reason="3 malformed outputs in a row")]
    trajectory.save(traj_path(tmp_path, "pkg__stuck-1"))
    rollout = build_index([tmp_path]).rollouts[0]
    steps = load_steps(rollout, load_sft_weights([]), "expert").steps
    assert rollout.handovers == 1 and steps[0].handover.label == "student → expert (3 malformed outputs in a row)"
    assert steps[1].handover is None


def test_the_report_is_one_self_contained_folder_with_every_page_linked(report: Path) -> None:
    out = report.parent
    pages = sorted(out.rglob("*.html"))
    assert len(pages) == 6  # the index and one page per readable rollout
    for page in pages:
        html = page.read_text()
        assert "Content-Security-Policy" in html and "default-src 'none'" in html
        assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html), page
        for link in re.findall(r'href="([^"#]+)"', html):
            assert (page.parent / link).is_file(), (page, link)
    index = report.read_text()
    script = re.search(r"<script>(.*)</script>", index, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src &#39;sha256-{digest}&#39;" in index
    assert (out / "analysis" / "covariate_shift" / "plots" / "frechet.png").read_bytes() == png()
    assert 'href="analysis/covariate_shift/frechet.csv"' in index and ">wrong_fix<" in index


def test_a_rollout_page_shows_roles_the_switch_badges_tests_and_escapes_model_text(report: Path) -> None:
    page = (report.parent / "rollouts" / "oec" / "pkg__parse-1__r0.html").read_text()
    assert page.count('class="switch-marker"') == 1 and 'href="#step-2"' in page
    assert page.count('class="step role-student"') == 2 and page.count('class="step role-expert"') == 3
    assert page.count('class="badge trained"') == 3 and page.count('class="badge masked"') == 2
    assert "FAIL_TO_PASS: 1 passed, 0 failed" in page and "<details" in page  # the 80-line observation is folded
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert HOSTILE not in page and "\x1b" not in page
    judged = (report.parent / "rollouts" / "oec" / "pkg__parse-2.html").read_text()
    assert "edited the wrong function" in judged and 'class="badge' not in judged


def test_a_report_never_replaces_a_folder_it_did_not_write(demo: DemoRun, tmp_path: Path) -> None:
    index, extras = build_index([demo.run]), load_extras([], [])
    _write(tmp_path / "mine" / "notes.txt", "keep me")
    with pytest.raises(InspectError, match="not empty and not an earlier report"):
        write_report(tmp_path / "mine", index, extras, "expert")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    first = write_report(tmp_path / "report", index, extras, "expert")
    stale = first.parent / "rollouts" / "oec" / "gone.html"
    _write(stale, "old")
    assert write_report(tmp_path / "report", index, extras, "expert") == first and not stale.exists()


@pytest.mark.parametrize("args, message", [
    (["{tmp}/missing"], "missing: no such file or directory"),
    (["{tmp}/notes.txt"], "not a trajectory file"),
    (["{tmp}"], "no trajectories"),
    (["{run}", "--eval_dir", "{tmp}", "--eval_dir", "{tmp}"], "--eval_dir given 2 time(s) for 1 run dir(s)"),
    (["{run}", "--sft", "{tmp}/none.jsonl"], "no such SFT file (--sft)"),
    (["{run}", "--analysis", "{tmp}/none"], "analysis directory does not exist (--analysis)"),
    (["{run}", "--html", "{tmp}/notes.txt"], "exists and is not a folder (--html)"),
])
def test_bad_paths_and_options_are_one_line_with_exit_status_2(demo: DemoRun, tmp_path: Path, capsys, args, message) -> None:
    _write(tmp_path / "notes.txt", "not a trajectory")
    argv = [arg.format(tmp=tmp_path, run=demo.run) for arg in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("sweagent inspect: ")
