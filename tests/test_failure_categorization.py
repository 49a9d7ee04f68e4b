"""Failure categorisation: which trajectories are judged, what the judge sees, and what a run leaves behind.

The slow tests ask the real local expert server (Qwen2.5-Coder-1.5B on CPU) with short prompts and answers.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from failure_categorization.answers import majority_vote, parse_answer
from failure_categorization.charts import write_charts
from failure_categorization.cli import main
from failure_categorization.compare import compare
from failure_categorization.errors import CategorizationError
from failure_categorization.judge import Judge, JudgeSettings
from failure_categorization.prompt import PromptLimits, build_prompt, truncate
from failure_categorization.report import build_results, write_results
from failure_categorization.runner import categorize, split_cases
from failure_categorization.selection import (
    FailedTrajectory,
    Selection,
    repository_from_id,
    repository_of,
    select_failed,
)
from failure_categorization.taxonomy import ANALYSIS_ERROR, load_taxonomy
from failure_categorization.verdicts import SampleRecord, Usage, Verdict, save_verdict
from sweagent.instance import TaskInstance
from sweagent.local_models import ServerInfo, ensure_server
from sweagent.trajectory import (
    HistoryMessage,
    ModelInfo,
    OECInfo,
    Trajectory,
    TrajectoryInfo,
    TrajectoryStep,
    load_trajectory,
    traj_path,
)

TAXONOMY = load_taxonomy()
REPLAY_CONFIG = json.dumps({"agent": {"tools": {"bundles": [{"path": "tools/registry"}, {"path": "tools/edit_anthropic"}]}}})
INSTANCE_MESSAGE = (
    "<uploaded_files>\n/testbed\n</uploaded_files>\nI've uploaded a python code repository in /testbed. "
    "Consider the following PR description:\n\n<pr_description>\n{problem}\n</pr_description>\n\n"
    "Make the minimal changes to non-test files so that the requirements are met."
)
PROBLEMS = {
    "oauthlib": "Bearer token validation accepts expired tokens: `validate_bearer_token` returns True for a token whose "
    "expires_at is in the past.",
    "jinja": "The `truncate` filter ignores the `leeway` argument and always cuts at the exact length.",
    "tomli": "Parsing a float like `1e1_000` raises IndexError instead of TOMLDecodeError.",
}
Step = tuple[str, str]


def _trajectory(problem: str, steps: list[Step], exit_status: str, submission: str, switch_at: int | None) -> Trajectory:
    """A trajectory as the agent writes it: student steps, then expert steps from `switch_at` on."""
    history = [
        HistoryMessage(role="system", content="You are a helpful assistant that can interact with a computer.", message_type="system"),
        HistoryMessage(role="user", content=INSTANCE_MESSAGE.format(problem=problem), message_type="observation"),
    ]
    trajectory = []
    for index, (action, observation) in enumerate(steps):
        role = "expert" if switch_at is not None and index >= switch_at else "student"
        response = f"Let me run this.\n<function=bash><parameter=command>{action}</parameter></function>"
        trajectory.append(
            TrajectoryStep(action=action, observation=observation, response=response, thought="Let me run this.",
                           model_role=role, model_name=f"{role}-model")
        )
        history.append(HistoryMessage(role="assistant", content=response, message_type="action", model_role=role))
        history.append(HistoryMessage(role="user", content=observation, message_type="observation"))
    oec = OECInfo(
        switch_type="step_count", switch_step_drawn=switch_at, switched_at_step=switch_at,
        student=ModelInfo(name="openai/student"), expert=ModelInfo(name="openai/expert"), seed=0,
    )
    return Trajectory(
        trajectory=trajectory,
        history=history,
        info=TrajectoryInfo(exit_status=exit_status, submission=submission, oec=oec),
        replay_config=REPLAY_CONFIG,
    )


WRONG_FILE = [
    ("grep -rn 'def validate_bearer_token' /testbed/oauthlib", "/testbed/oauthlib/oauth2/rfc6749/request_validator.py:560:    def validate_bearer_token(self, token, scopes, request):"),
    ("sed -n 555,575p /testbed/oauthlib/oauth2/rfc6749/request_validator.py", "    def validate_bearer_token(self, token, scopes, request):\n        raise NotImplementedError('Subclasses must implement this method.')"),
    ("sed -i 's/expires_in = 3600/expires_in = 60/' /testbed/oauthlib/oauth2/rfc6749/tokens.py", ""),
    ("submit", "diff --git a/oauthlib/oauth2/rfc6749/tokens.py b/oauthlib/oauth2/rfc6749/tokens.py\n-    expires_in = 3600\n+    expires_in = 60"),
]
REREADING = [("cat /testbed/src/jinja2/filters.py | head -80", "import math\nimport random\nimport re\n...")] * 6
LISTING = [
    ("find / -name '*.py'", "\n".join(f"/usr/lib/python3/dist-packages/pkg{i}/module{i}.py" for i in range(400))),
    ("ls -R /", "\n".join(f"/proc/{i}/fd" for i in range(300))),
]


def write_run(root: Path) -> tuple[Path, Path]:
    """A run dir and eval dir covering every selection case: unresolved, exit_*, resolved, malformed, unevaluated."""
    run_dir, eval_dir = root / "run", root / "eval"
    cases = {
        "oauthlib__oauthlib.1fd52536.func_basic__wr0ng": (PROBLEMS["oauthlib"], WRONG_FILE, "submitted", "diff --git a/x", 2, False),
        "pallets__jinja.ada0a9a6.lm_modify__l00p": (PROBLEMS["jinja"], REREADING, "exit_cost", "", 1, None),
        "hukkin__tomli.443a0c1b.combine_file__l1st": (PROBLEMS["tomli"], LISTING, "submitted (exit_context)", "", None, None),
        "hukkin__tomli.443a0c1b.func_pm__ok": (PROBLEMS["tomli"], WRONG_FILE[:1], "submitted", "diff --git a/y", 0, True),
        "hukkin__tomli.443a0c1b.func_pm__noeval": (PROBLEMS["tomli"], WRONG_FILE[:1], "submitted", "diff --git a/z", 0, None),
    }
    for traj_id, (problem, steps, status, patch, switch_at, resolved) in cases.items():
        _trajectory(problem, steps, status, patch, switch_at).save(traj_path(run_dir, traj_id))
        if resolved is not None:
            report = {"patch_exists": True, "resolved": resolved, "tests_status": {"FAIL_TO_PASS": {"success": [], "failure": ["t"]}}}
            (eval_dir / traj_id).mkdir(parents=True)
            (eval_dir / traj_id / "report.json").write_text(json.dumps(report))
    broken = traj_path(run_dir, "pallets__jinja.ada0a9a6.func_pm__br0ken")
    broken.parent.mkdir(parents=True)
    broken.write_text('{"trajectory": [')
    return run_dir, eval_dir


FAILED_IDS = [
    "hukkin__tomli.443a0c1b.combine_file__l1st",
    "pallets__jinja.ada0a9a6.lm_modify__l00p",
    "oauthlib__oauthlib.1fd52536.func_basic__wr0ng",
]


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, Path]:
    return write_run(tmp_path)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tiny_limits() -> PromptLimits:
    """Short prompts: the 1.5B judge on two CPU cores reads about a hundred tokens a second."""
    return PromptLimits(last_steps=2, max_problem_chars=300, max_action_chars=150, max_observation_chars=200, max_tools_chars=200)


# ---------------------------------------------------------------- selection


def test_failed_trajectories_are_unresolved_or_exit_statuses_grouped_by_status(run: tuple[Path, Path]) -> None:
    selection = select_failed(*run, show_progress=False)
    assert [case.traj_id for case in selection.failed] == FAILED_IDS
    assert [case.exit_status for case in selection.failed] == ["exit_context", "exit_cost", "submitted"]
    assert selection.resolved == 1
    assert selection.not_evaluated == ["hukkin__tomli.443a0c1b.func_pm__noeval"]
    assert len(selection.malformed) == 1 and "func_pm__br0ken" in selection.malformed[0][0]
    assert "not valid JSON" in selection.malformed[0][1]


def test_limit_is_per_exit_status_and_filters_narrow_the_selection(run: tuple[Path, Path]) -> None:
    run_dir, eval_dir = run
    _trajectory("p", WRONG_FILE, "exit_cost", "", None).save(traj_path(run_dir, "pallets__jinja.ada0a9a6.a__second"))
    limited = select_failed(run_dir, eval_dir, limit_per_status=1, show_progress=False)
    assert [case.exit_status for case in limited.failed] == ["exit_context", "exit_cost", "submitted"]
    only_jinja = select_failed(run_dir, eval_dir, traj_filter="jinja", show_progress=False)
    assert {case.traj_id for case in only_jinja.failed} == {"pallets__jinja.ada0a9a6.a__second", "pallets__jinja.ada0a9a6.lm_modify__l00p"}
    instance = TaskInstance(instance_id=FAILED_IDS[2], repo="swesmith/oauthlib__oauthlib.1fd52536", problem_statement="From the file.")
    from_file = select_failed(run_dir, eval_dir, instances={instance.instance_id: instance}, show_progress=False)
    assert [(c.traj_id, c.repository, c.problem_statement) for c in from_file.failed] == [
        (FAILED_IDS[2], "oauthlib/oauthlib", "From the file.")
    ]


def test_an_unreadable_report_is_listed_as_malformed_not_a_crash(run: tuple[Path, Path]) -> None:
    run_dir, eval_dir = run
    (eval_dir / FAILED_IDS[2] / "report.json").write_text('{"patch_exists": true}')
    selection = select_failed(run_dir, eval_dir, show_progress=False)
    assert FAILED_IDS[2] not in [case.traj_id for case in selection.failed]
    assert any("key 'resolved': expected true or false" in reason for _, reason in selection.malformed)


def test_repository_names_come_from_the_instance_file_or_the_id() -> None:
    assert repository_from_id("oauthlib__oauthlib.1fd52536.func_basic__abc") == "oauthlib/oauthlib"
    assert repository_from_id("pandas-dev__pandas.95280573.pr_53652") == "pandas-dev/pandas"
    assert repository_from_id("django__django-11099") == "django/django"
    assert repository_from_id("tomli.abc123__lm_modify__x") == "tomli"
    assert repository_of(TaskInstance(instance_id="x", repo="psf/requests"), "x") == "psf/requests"
    assert repository_of(TaskInstance(instance_id="x", repo="swesmith/pallets__jinja.ada0a9a6"), "x") == "pallets/jinja"


# ---------------------------------------------------------------- prompt


def test_the_prompt_shows_the_task_tools_exit_status_last_steps_and_taxonomy(run: tuple[Path, Path]) -> None:
    run_dir, eval_dir = run
    case = next(c for c in select_failed(run_dir, eval_dir, show_progress=False).failed if c.exit_status == "exit_cost")
    limits = PromptLimits(last_steps=2, max_observation_chars=40)
    prompt = build_prompt(case, load_trajectory(case.trajectory_file), TAXONOMY, limits)
    body = prompt.body
    assert PROBLEMS["jinja"] in body and "<pr_description>" not in body
    assert "- str_replace_editor: A file viewing and editing tool." in body and "- bash:" in body
    assert "Exit status: exit_cost — The run was stopped because it reached its cost or step budget." in body
    assert "Where to look: Look for repetition" in body
    assert "The agent took 6 steps." in body and "took over at step 2" in body
    assert "### Step 5 (expert)" in body and "### Step 6 (expert)" in body and "### Step 4" not in body
    assert all(f"- {name}:" in body for name in TAXONOMY.names)
    structured, plain = prompt.messages(True), prompt.messages(False)
    assert '"category"' in structured[-1]["content"] and "`category: <name>`" in plain[-1]["content"]


def test_truncation_keeps_head_and_tail_and_says_how_much_was_cut() -> None:
    text = "HEAD" + "x" * 1000 + "Traceback: KeyError"
    cut = truncate(text, 100)
    assert cut.startswith("HEAD") and cut.endswith("KeyError") and "[... 923 characters cut ...]" in cut
    assert truncate("short", 100) == "short"


# ---------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("reply", "category", "raw"),
    [
        ('{"description": "Edited tokens.py, the bug is elsewhere.", "category": "identified_incorrect_file"}', "identified_incorrect_file", "identified_incorrect_file"),
        ('{"description": "It kept reading filters.py and never ed', "other", None),
        ('{"description": "Cut", "category": "endless_file_reading"', "endless_file_reading", "endless_file_reading"),
        ("The listing of / filled the context.\ncategory: context_overflow_from_listing", "context_overflow_from_listing", "context_overflow_from_listing"),
        ("It looped.\n**Category:** Infinite Loop", "infinite_loop", "Infinite Loop"),
        ("The model was lazy.\ncategory: laziness", "other", "laziness"),
        ('{"description": "Bad", "category": "bad_luck"}', "other", "bad_luck"),
        ("I cannot tell.", "other", None),
    ],
)
def test_answers_outside_the_taxonomy_become_other_and_are_flagged(reply: str, category: str, raw: str | None) -> None:
    answer = parse_answer(reply, TAXONOMY)
    assert (answer.category, answer.raw_category) == (category, raw)
    assert answer.flagged == (category == "other")


def test_majority_vote_records_agreement_and_breaks_ties_by_the_first_answer() -> None:
    answers = [parse_answer(f"x\ncategory: {c}", TAXONOMY) for c in ["wrong_solution", "tool_error", "tool_error"]]
    vote = majority_vote(answers)
    assert (vote.category, round(vote.agreement, 3), vote.votes) == ("tool_error", 0.667, {"wrong_solution": 1, "tool_error": 2})
    tie = majority_vote(answers[:2])
    assert (tie.category, tie.agreement) == ("wrong_solution", 0.5)


# ---------------------------------------------------------------- faults and bad input


def test_a_down_server_ends_every_item_as_analysis_error_quickly(run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, eval_dir = run
    out = run_dir.parent / "out"
    started = time.monotonic()
    code = main([
        "categorize", "--run_dir", str(run_dir), "--eval_dir", str(eval_dir), "--output_dir", str(out),
        "--model", "openai/expert", "--api_base", f"http://127.0.0.1:{_closed_port()}/v1", "--num_workers", "1",
    ])
    elapsed = time.monotonic() - started
    assert code == 1 and elapsed < 20
    results = json.loads((out / "failure_categories.json").read_text())
    assert [e["category"] for e in results["trajectories"]] == [ANALYSIS_ERROR] * 3
    assert results["summary"]["analysis_errors"] == 3
    assert all(e["error"] for e in results["trajectories"])
    # the first item tried 3 times; the others knew the server was down and did not try again
    assert results["summary"]["cost"]["calls"] == 3
    assert "3 trajectories could not be judged" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run_dir", "/nonexistent/run"], "/nonexistent/run: run directory does not exist"),
        (["--filter", "("], "--filter: not a valid regular expression"),
        (["--taxonomy", "TAXONOMY_FILE"], "key 'fallback_category'"),
        (["--instances", "/nonexistent/instances.json"], "instance file does not exist"),
    ],
)
def test_bad_input_is_one_line_naming_file_and_key_with_exit_2(
    run: tuple[Path, Path], args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, _ = run
    taxonomy = run_dir.parent / "taxonomy.yaml"
    taxonomy.write_text("categories: {a: first}\nfallback_category: b\n")
    argv = ["categorize", "--run_dir", str(run_dir), "--dry_run", *[str(taxonomy) if a == "TAXONOMY_FILE" else a for a in args]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("categorize_failures.sh: error:") and "Traceback" not in err


def test_a_taxonomy_cannot_claim_the_reserved_analysis_error(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("categories: {analysis_error: x, other: y}\n")
    with pytest.raises(CategorizationError, match="reserved"):
        load_taxonomy(path)


def test_dry_run_prints_the_prompts_and_asks_nobody(run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, eval_dir = run
    code = main(["categorize", "--run_dir", str(run_dir), "--eval_dir", str(eval_dir), "--dry_run", "--limit", "1"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.count("· user =====") == 3 and PROBLEMS["oauthlib"] in captured.out
    assert "3 prompts would be sent" in captured.err
    assert not (run_dir / "failure_categorization").exists()


def test_options_come_from_a_config_file_and_a_bad_value_names_its_key_and_file(
    run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, eval_dir = run
    options = tmp_path / "judge.yaml"
    options.write_text(f"run_dir: {run_dir}\neval_dir: {eval_dir}\ndry_run: true\nlimit: 1\n")
    assert main(["--config", str(options), "--last_steps", "2"]) == 0
    assert "3 prompts would be sent" in capsys.readouterr().err
    options.write_text(f"run_dir: {run_dir}\nsamples: 0\n")
    assert main(["--config", str(options)]) == 2
    assert f"{options}: key 'samples': Input should be greater than 0" in capsys.readouterr().err


# ---------------------------------------------------------------- outputs


def _stored_verdicts(run_dir: Path, eval_dir: Path, categories: list[str]) -> tuple[Selection, Judge, Path]:
    """Verdicts as a judge run leaves them on disk, so the outputs can be checked without asking a model."""
    judge = Judge(JudgeSettings(model="openai/expert"), TAXONOMY)
    selection = select_failed(run_dir, eval_dir, show_progress=False)
    out = run_dir.parent / "out"
    for case, category in zip(selection.failed, categories, strict=True):
        save_verdict(out, _verdict(case, category, judge))
    return selection, judge, out


def _verdict(case: FailedTrajectory, category: str, judge: Judge) -> Verdict:
    return Verdict(
        category=category, description=f"because {category}", flagged=False, agreement=1.0,
        samples=[SampleRecord(category=category)], usage=Usage(calls=1, prompt_tokens=100, completion_tokens=20),
        traj_id=case.traj_id, instance_id=case.instance_id, repository=case.repository, exit_status=case.exit_status,
        trajectory_file=str(case.trajectory_file), judge_model=judge.settings.model, judge_fingerprint=judge.fingerprint,
    )


def test_results_json_csv_and_charts_summarise_by_exit_status_and_repository(run: tuple[Path, Path]) -> None:
    selection, judge, out = _stored_verdicts(*run, ["context_overflow_from_listing", "endless_file_reading", "identified_incorrect_file"])
    outcome = categorize(selection.failed, judge, out)  # every verdict exists: nothing is asked
    assert (outcome.asked, outcome.reused, judge.usage.calls) == (0, 3, 0)
    results = build_results(outcome.verdicts, selection, TAXONOMY, judge.settings)
    summary = results["summary"]
    assert summary["category_by_exit_status"]["exit_cost"]["endless_file_reading"] == 1
    assert summary["category_by_repository"]["hukkin/tomli"]["context_overflow_from_listing"] == 1
    assert summary["cost"] == {"calls": 3, "prompt_tokens": 300, "completion_tokens": 60, "cost": 0.0}
    assert summary["not_evaluated"] == ["hukkin__tomli.443a0c1b.func_pm__noeval"] and len(summary["malformed"]) == 1
    json_path, csv_path = write_results(results, out)
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("traj_id,instance_id,repository,exit_status,category,description") and len(rows) == 4
    charts = write_charts(results, out)
    assert {p.name for p in charts} == {
        f"{stem}.{ext}" for stem in ("categories_by_exit_status", "categories_by_exit_status_share", "categories_by_repository")
        for ext in ("png", "pdf")
    }
    assert all(p.stat().st_size > 5000 for p in charts)


def test_the_output_folder_readme_says_what_was_judged_by_whom_and_what_each_file_is(run: tuple[Path, Path]) -> None:
    run_dir, eval_dir = run
    _, _, out = _stored_verdicts(run_dir, eval_dir, ["tool_error", "infinite_loop", "tool_error"])
    code = main([  # every verdict exists, so the (unreachable) server is never asked
        "categorize", "--run_dir", str(run_dir), "--eval_dir", str(eval_dir), "--output_dir", str(out),
        "--model", "openai/expert", "--api_base", f"http://127.0.0.1:{_closed_port()}/v1",
    ])
    assert code == 0
    readme = (out / "README.md").read_text()
    assert f"- run directory: `{run_dir}`" in readme and f"- eval directory: `{eval_dir}`" in readme
    assert "- 3 failed trajectories judged" in readme and "judge: `openai/expert`, 1 answer(s)" in readme
    assert "| tool_error | 2 |" in readme and "| infinite_loop | 1 |" in readme
    for name in ("failure_categories.json", "failure_categories.csv", "verdicts/<traj_id>.json", "categories_by_repository.png"):
        assert f"`{name}`" in readme
    assert f"--output_dir {out}" in readme


def test_a_rerun_asks_again_for_analysis_errors_and_for_verdicts_of_another_judge(run: tuple[Path, Path]) -> None:
    selection, judge, out = _stored_verdicts(*run, ["tool_error", "infinite_loop", "wrong_solution"])
    save_verdict(out, _verdict(selection.failed[0], ANALYSIS_ERROR, judge))
    kept, todo = split_cases(selection.failed, judge, out)
    assert set(kept) == set(FAILED_IDS[1:]) and [case.traj_id for case in todo] == FAILED_IDS[:1]
    other_judge = Judge(JudgeSettings(model="openai/expert", samples=3), TAXONOMY)
    assert len(split_cases(selection.failed, other_judge, out)[1]) == 3


def test_compare_reports_agreement_and_cohens_kappa(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def results(model: str, categories: list[str]) -> Path:
        path = tmp_path / f"{model}.json"
        entries = [{"traj_id": f"t{i}", "category": c} for i, c in enumerate(categories)]
        path.write_text(json.dumps({"summary": {"judge": {"model": model}}, "trajectories": entries}))
        return path

    first = results("a", ["tool_error", "tool_error", "syntax_error", "syntax_error", ANALYSIS_ERROR])
    second = results("b", ["tool_error", "syntax_error", "syntax_error", "syntax_error", "tool_error"])
    comparison = compare(first, second)
    # agreement 3/4; chance agreement 0.5*0.25 + 0.5*0.75 = 0.5; kappa = (0.75 - 0.5) / (1 - 0.5)
    assert (comparison["compared"], comparison["agreement"], comparison["left_out_analysis_errors"]) == (4, 0.75, 1)
    assert comparison["cohen_kappa"] == pytest.approx(0.5)
    assert comparison["disagreements"] == [{"traj_id": "t1", "first": "tool_error", "second": "syntax_error"}]
    assert main(["compare", str(first), str(second)]) == 0
    assert "agreement 75.0%, Cohen's kappa 0.500" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"trajectories": [{"traj_id": "t0"}]}')
    assert main(["compare", str(first), str(bad)]) == 2


# ---------------------------------------------------------------- the real local judge


@pytest.fixture(scope="module")
def expert_server() -> ServerInfo:
    return ensure_server("expert")


@pytest.mark.slow
def test_the_real_judge_gives_valid_categories_and_resume_asks_only_what_is_missing(
    run: tuple[Path, Path], expert_server: ServerInfo
) -> None:
    run_dir, eval_dir = run
    out = run_dir.parent / "out"
    settings = JudgeSettings(model=expert_server.litellm_model, max_tokens=100, limits=_tiny_limits())

    def new_judge() -> Judge:
        return Judge(settings, TAXONOMY, api_base=expert_server.api_base, api_key="local")

    selection = select_failed(run_dir, eval_dir, show_progress=False)
    judge = new_judge()
    first = categorize(selection.failed, judge, out)
    assert judge.structured_fallback is None, "llama.cpp takes a JSON schema as response_format"
    assert (first.asked, first.reused, judge.usage.calls) == (3, 0, 3)
    for verdict in first.verdicts:
        # the schema's enum and its cap on the description's length leave the judge no way out of the taxonomy
        assert verdict.category in TAXONOMY.names and not verdict.flagged, verdict
        assert verdict.description, verdict
        assert verdict.usage.prompt_tokens > 100 and verdict.usage.completion_tokens > 0 and verdict.usage.cost == 0.0
    assert all((out / "verdicts" / f"{traj_id}.json").is_file() for traj_id in FAILED_IDS)

    # one verdict lost: a rerun asks exactly that one
    (out / "verdicts" / f"{FAILED_IDS[0]}.json").unlink()
    judge = new_judge()
    second = categorize(selection.failed, judge, out)
    assert (second.asked, second.reused, judge.usage.calls) == (1, 2, 1)
    assert second.verdicts[1:] == first.verdicts[1:]
    assert second.verdicts[0].category in TAXONOMY.names


@pytest.mark.slow
def test_a_cut_off_real_answer_is_recorded_as_other_and_flagged(run: tuple[Path, Path], expert_server: ServerInfo) -> None:
    run_dir, eval_dir = run
    case = select_failed(run_dir, eval_dir, show_progress=False).failed[0]
    settings = JudgeSettings(model=expert_server.litellm_model, max_tokens=2, limits=_tiny_limits())
    judge = Judge(settings, TAXONOMY, api_base=expert_server.api_base, api_key="local")
    judgement = judge.judge(build_prompt(case, load_trajectory(case.trajectory_file), TAXONOMY, settings.limits))
    assert (judgement.category, judgement.flagged, judgement.error) == ("other", True, None)
    assert judgement.samples[0].raw_category is None
