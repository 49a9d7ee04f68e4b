"""convert_to_sft: resolved trajectories become chat rows in the student's prompt and format that train only on
the expert's turns; everything dropped is accounted for; reruns are byte-identical."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from oec.sft.cli import main
from oec.sft.prompt import DEFAULT_PROMPT_CONFIG, load_student_prompt
from oec.sft.synthetic import StepSpec, build_trajectory, problem_statement_for, write_trajectory
from sweagent.tools.parsing import FunctionCallingParser, ThoughtActionParser, ToolCall, XMLFunctionCallingParser
from sweagent.trajectory import load_trajectory, traj_path

REPO = Path(__file__).resolve().parents[1]
PROMPT = load_student_prompt()
COMMANDS = PROMPT.commands
HEREDOC = "cat > /testbed/repro.py <<'EOF'\nfrom pkg import parse\nprint(parse('<a href=\"x\">&amp;</a>'))\nEOF\npython /testbed/repro.py"
FILE_TEXT = "def tag(name):\n    return f'<{name}>' + '</parameter>' + \"</function>\"\n\n```\nnot a fence\n```\n"


def _call(index: int) -> ToolCall:
    """Distinct, realistic calls, including multi-line values full of characters that break naive formats."""
    calls = [
        ToolCall("bash", {"command": f"grep -rn 'def parse_{index}' /testbed/src"}),
        ToolCall("str_replace_editor", {"command": "view", "path": f"/testbed/src/mod_{index}.py", "view_range": [1, 40 + index]}),
        ToolCall("bash", {"command": HEREDOC.replace("repro", f"repro_{index}")}),
        ToolCall("str_replace_editor", {"command": "create", "path": f"/testbed/t_{index}.py", "file_text": FILE_TEXT}),
        ToolCall("str_replace_editor", {"command": "str_replace", "path": "/testbed/src/parse.py",
                                        "old_str": f"    return tag_id_{index}\n", "new_str": f"    return int(tag_id_{index})\n"}),
    ]
    return calls[index % len(calls)]


def _specs(roles: str, tag: str = "") -> list[StepSpec]:
    """One step per letter (s: student, e: expert, p: plain SWE-agent step without a role); the last one submits."""
    specs = []
    for index, letter in enumerate(roles):
        role = {"s": "student", "e": "expert", "p": None}[letter]
        last = index == len(roles) - 1
        call = ToolCall("submit", {}) if last else _call(index)
        observation = "" if last else f"output {tag}{index}: {index * 7} lines"
        specs.append(StepSpec(role, call, observation, f"Thought {tag}{index}: next I run {call.name}."))
    return specs


def _write(run: Path, evals: Path | None, traj_id: str, specs: list[StepSpec], resolved: bool = True, **kwargs) -> Path:
    instance_id = traj_id.split("__r")[0]
    write_trajectory(run, evals, traj_id, build_trajectory(instance_id, specs, COMMANDS, **kwargs), resolved)
    return traj_path(run, traj_id)


def _convert(tmp_path: Path, *args: str, runs: list[Path] | None = None, evals: list[Path] | None = None,
             name: str = "sft") -> tuple[dict, list[dict], list[dict]]:
    """Run the CLI in-process; returns (summary, train rows, validation rows)."""
    output = tmp_path / "out" / f"{name}.jsonl"
    runs = runs or [tmp_path / "run"]
    evals = evals if evals is not None else [tmp_path / "eval"]
    argv = ["--runs", *map(str, runs), "--output", str(output), "--quiet", *args]
    if evals:
        argv += ["--evals", *map(str, evals)]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "out" / f"{name}.summary.json").read_text())
    read = lambda path: [json.loads(line) for line in path.read_text().splitlines()]  # noqa: E731
    return summary, read(output), read(tmp_path / "out" / f"{name}.val.jsonl")


def _assistants(row: dict) -> list[dict]:
    return [m for m in row["messages"] if m["role"] == "assistant"]


# ---- rows -------------------------------------------------------------------------------------------------------


def test_a_corrected_trajectory_becomes_one_row_in_the_students_prompt_training_only_expert_turns(tmp_path):
    specs = _specs("sssseee")
    specs[1].observation = ""
    _write(tmp_path / "run", tmp_path / "eval", "pkg__bug-1", specs)
    summary, train, _ = _convert(tmp_path)
    [row] = train
    assert list(row) == ["messages", "opening_messages", "instance_id", "traj_id", "model_switch_idx", "resolved", "source_run"]
    assert (row["instance_id"], row["traj_id"], row["resolved"], row["source_run"]) == ("pkg__bug-1", "pkg__bug-1", True, str(tmp_path / "run"))
    opening = PROMPT.opening_messages(problem_statement_for("pkg__bug-1"), "/testbed")
    assert row["opening_messages"] == 2 and row["messages"][:2] == [{"role": m["role"], "content": m["content"]} for m in opening]
    assert [m["role"] for m in row["messages"][2:]] == ["assistant", "user"] * 6 + ["assistant"]
    assert [m["weight"] for m in _assistants(row)] == [0, 0, 0, 0, 1, 1, 1]
    assert all("weight" not in m for m in row["messages"] if m["role"] != "assistant")
    assert row["model_switch_idx"] == 4
    assert row["messages"][3]["content"] == "OBSERVATION:\noutput 0: 0 lines"
    assert row["messages"][5]["content"] == "Your command ran successfully and did not produce any output."
    assert summary["assistant_turns"] == {"trained": 3, "masked": 4}
    assert summary["dropped"] == {}


def test_native_expert_calls_are_rendered_as_xml_that_the_students_parser_reads_back_unchanged(tmp_path):
    path = _write(tmp_path / "run", tmp_path / "eval", "pkg__bug-1", _specs("sseeeeeee"))
    _, [row], _ = _convert(tmp_path)
    steps = load_trajectory(path).trajectory
    native, xml = FunctionCallingParser(), XMLFunctionCallingParser()
    for step, answer in zip(steps, _assistants(row)):
        parsed = xml.parse(answer["content"], None, COMMANDS)
        if step.model_role == "expert":
            original = native.parse(step.response, step.extra_info["tool_calls"], COMMANDS).call
            assert (parsed.call.name, parsed.call.arguments) == (original.name, original.arguments)
        assert parsed.action == step.action and parsed.thought == step.thought
    assert {"bash", "str_replace_editor", "submit"} <= {xml.parse(a["content"], None, COMMANDS).call.name for a in _assistants(row)}


def test_tool_style_rows_carry_native_calls_tool_messages_and_the_tool_schemas(tmp_path):
    _write(tmp_path / "run", tmp_path / "eval", "pkg__bug-1", _specs("sseee"))
    _, [row], _ = _convert(tmp_path, "--style", "tool")
    assert row["tools"] == [command.function_schema() for command in COMMANDS]
    answers = _assistants(row)
    observations = [m for m in row["messages"] if m["role"] == "tool"]
    assert [o["tool_call_id"] for o in observations] == [a["tool_calls"][0]["id"] for a in answers[:-1]]
    parser = FunctionCallingParser()
    calls = [parser.parse(a["content"], a["tool_calls"], COMMANDS).call for a in answers]
    assert [(c.name, c.arguments) for c in calls] == [(s.call.name, s.call.arguments) for s in _specs("sseee")]


def test_ticks_style_rows_hold_the_same_shell_actions(tmp_path):
    path = _write(tmp_path / "run", tmp_path / "eval", "pkg__bug-1", _specs("sseeee"))
    _, [row], _ = _convert(tmp_path, "--style", "ticks")
    actions = [ThoughtActionParser().parse(a["content"], None, COMMANDS).action for a in _assistants(row)]
    assert actions == [step.action for step in load_trajectory(path).trajectory]
    assert "Every answer has two parts" in row["messages"][0]["content"] and "```" in row["messages"][0]["content"]


def test_an_exit_due_to_cost_turn_is_replaced_by_a_submit_turn(tmp_path):
    specs = _specs("ppp")[:-1] + [StepSpec(None, None, thought="Exit due to cost limit")]
    _write(tmp_path / "run", tmp_path / "eval", "pkg__bug-1", specs)
    _, [row], _ = _convert(tmp_path)
    answers = _assistants(row)
    assert len(answers) == 3
    assert XMLFunctionCallingParser().parse(answers[-1]["content"], None, COMMANDS).call == ToolCall("submit", {})
    assert "Exit due to" not in json.dumps(row) and "Exited (autosubmitted)" not in json.dumps(row)
    assert row["messages"][-2]["content"] == "OBSERVATION:\noutput 1: 7 lines"


def test_a_run_that_ended_without_submitting_its_graded_patch_gets_a_final_submit(tmp_path):
    _write(tmp_path / "run", tmp_path / "eval", "pkg__bug-1", _specs("sseee")[:-1])
    _, [row], _ = _convert(tmp_path)
    answers = _assistants(row)
    assert len(answers) == 5 and answers[-1]["weight"] == 1
    assert XMLFunctionCallingParser().parse(answers[-1]["content"], None, COMMANDS).call.name == "submit"


# ---- baselines --------------------------------------------------------------------------------------------------


def test_plain_swe_agent_expert_trajectories_train_every_turn_for_imitation_learning(tmp_path):
    _write(tmp_path / "run", tmp_path / "eval", "pkg__bug-1", _specs("pppp"))
    _, [row], _ = _convert(tmp_path)
    assert [m["weight"] for m in _assistants(row)] == [1, 1, 1, 1]
    assert row["model_switch_idx"] == 0


def test_student_only_trajectories_have_nothing_to_train_unless_student_masking_is_off(tmp_path):
    _write(tmp_path / "run", tmp_path / "eval", "pkg__bug-1", _specs("ssss"))
    _write(tmp_path / "run", tmp_path / "eval", "pkg__bug-2", _specs("ppp"))
    summary, train, _ = _convert(tmp_path, "--default_role", "student")
    assert train == [] and summary["dropped"] == {"nothing_to_train": 2}
    summary, train, _ = _convert(tmp_path, "--default_role", "student", "--no-mask_student", "--val_fraction", "0")
    assert [[m["weight"] for m in _assistants(row)] for row in train] == [[1, 1, 1, 1], [1, 1, 1]]
    assert [row["model_switch_idx"] for row in train] == [4, 3]


def test_without_student_masking_a_corrected_trajectory_trains_every_turn_but_keeps_its_switch_index(tmp_path):
    _write(tmp_path / "run", tmp_path / "eval", "pkg__bug-1", _specs("sssee"))
    _, [row], _ = _convert(tmp_path, "--no-mask_student")
    assert [m["weight"] for m in _assistants(row)] == [1] * 5 and row["model_switch_idx"] == 3


# ---- filters ----------------------------------------------------------------------------------------------------


def _looping(roles: str, loop_at: int, period: int, tag: str = "") -> list[StepSpec]:
    """Steps from `loop_at` on repeat a block of `period` (call, observation) pairs until the last, which submits."""
    specs = _specs(roles, tag)
    for index in range(loop_at, len(specs) - 1):
        source = specs[loop_at + (index - loop_at) % period]
        specs[index] = StepSpec(specs[index].role, source.call, source.observation, specs[index].thought)
    return specs


def test_the_repetition_filter_drops_loops_and_keeps_healthy_trajectories(tmp_path):
    run, evals = tmp_path / "run", tmp_path / "eval"
    _write(run, evals, "pkg__healthy", _specs("sseeeeeee"))
    _write(run, evals, "pkg__same-action", _looping("sseeeeeee", 3, 1))
    _write(run, evals, "pkg__ping-pong", _looping("sseeeeeee", 2, 2))
    _write(run, evals, "pkg__student-loop", _looping("sssssseee", 0, 1)[:5] + _specs("sssssseee", "x")[5:])
    summary, train, _ = _convert(tmp_path, "--val_fraction", "0")
    assert sorted(row["traj_id"] for row in train) == ["pkg__healthy", "pkg__student-loop"]
    assert summary["dropped_trajectories"] == {"observation_cycle": [f"{run}/pkg__ping-pong"], "repeated_action": [f"{run}/pkg__same-action"]}
    summary, train, _ = _convert(tmp_path, "--repetition_scope", "all", "--val_fraction", "0")
    assert [row["traj_id"] for row in train] == ["pkg__healthy"]
    assert summary["dropped"]["repeated_action"] == 2
    summary, train, _ = _convert(tmp_path, "--max_repeated_actions", "0", "--observation_cycle_repeats", "0", "--val_fraction", "0")
    assert len(train) == 4


def test_unresolved_duplicate_and_surplus_trajectories_are_dropped_with_their_reason(tmp_path):
    run, evals = tmp_path / "run", tmp_path / "eval"
    for rollout in range(3):
        _write(run, evals, f"pkg__bug-1__r{rollout}", _specs("sseee", tag=f"r{rollout}"))
    _write(run, evals, "pkg__bug-2__r0", _specs("sseee"), resolved=False)
    summary, train, _ = _convert(tmp_path, "--max_per_instance", "2", "--val_fraction", "0")
    kept = [row["traj_id"] for row in train]
    assert len(kept) == 2 and {row["instance_id"] for row in train} == {"pkg__bug-1"}
    assert summary["dropped"] == {"max_per_instance": 1, "unresolved": 1}
    [surplus] = summary["dropped_trajectories"]["max_per_instance"]
    assert {surplus.rsplit("/", 1)[1], *kept} == {f"pkg__bug-1__r{k}" for k in range(3)}
    summary, train, _ = _convert(tmp_path, "--no-resolved_only", "--val_fraction", "0", runs=[run, run], evals=[evals, evals])
    assert len(train) == 4 and summary["dropped"] == {"duplicate": 4}
    assert [row["resolved"] for row in train] == [True, True, True, False]


def test_the_validation_split_takes_whole_instances(tmp_path):
    for instance in range(20):
        for rollout in range(2):
            _write(tmp_path / "run", tmp_path / "eval", f"pkg__bug-{instance}__r{rollout}", _specs("see", tag=f"{instance}.{rollout}"))
    summary, train, validation = _convert(tmp_path, "--val_fraction", "0.25", "--seed", "3")
    train_ids, val_ids = {r["instance_id"] for r in train}, {r["instance_id"] for r in validation}
    assert (len(train_ids), len(val_ids), len(validation)) == (15, 5, 10) and not train_ids & val_ids
    assert summary["instances"] == {"train": 15, "validation": 5}
    _, _, other = _convert(tmp_path, "--val_fraction", "0.25", "--seed", "4", name="other")
    assert {r["instance_id"] for r in other} != val_ids


# ---- bad input --------------------------------------------------------------------------------------------------


def test_corrupt_and_unmatched_files_are_counted_and_listed_and_the_rest_is_converted(tmp_path):
    run, evals = tmp_path / "run", tmp_path / "eval"
    _write(run, evals, "pkg__good", _specs("see"))
    truncated = _write(run, evals, "pkg__truncated", _specs("see"))
    truncated.write_text(truncated.read_text()[:500])
    _write(run, None, "pkg__no-report", _specs("see"))
    _write(run, evals, "pkg__bad-report", _specs("see"))
    (evals / "pkg__bad-report" / "report.json").write_text('{"patch_exists": true}')
    (evals / "pkg__gone").mkdir()
    (evals / "pkg__gone" / "report.json").write_text('{"resolved": true}')
    summary, train, _ = _convert(tmp_path)
    assert [row["traj_id"] for row in train] == ["pkg__good"]
    assert summary["dropped"] == {"corrupt_report": 1, "corrupt_trajectory": 1, "missing_report": 1}
    [corrupt] = summary["dropped_trajectories"]["corrupt_trajectory"]
    assert corrupt["trajectory"] == f"{run}/pkg__truncated" and "corrupt or truncated" in corrupt["error"]
    assert "key 'resolved'" in summary["dropped_trajectories"]["corrupt_report"][0]["error"]
    assert summary["dropped_trajectories"]["missing_report"] == [f"{run}/pkg__no-report"]
    assert summary["orphan_reports"] == [str(evals / "pkg__gone" / "report.json")]


def test_a_trajectory_without_a_recorded_run_config_needs_the_instance_file_and_a_prompt_config(tmp_path):
    _write(tmp_path / "run", tmp_path / "eval", "pkg__bug-1", _specs("see"), with_replay_config=False)
    summary, train, _ = _convert(tmp_path)
    assert train == [] and summary["dropped"] == {"no_problem_statement": 1}
    instances = tmp_path / "instances.jsonl"
    instances.write_text(json.dumps({"instance_id": "pkg__bug-1", "problem_statement": "Tags lose their id."}) + "\n")
    summary, train, _ = _convert(tmp_path, "--instances", str(instances))
    [dropped] = summary["dropped_trajectories"]["no_student_prompt"]
    assert train == [] and "recorded no agent config; name the student's prompt with --prompt_config" in dropped["error"]
    _, [row], _ = _convert(tmp_path, "--instances", str(instances), "--prompt_config", str(DEFAULT_PROMPT_CONFIG))
    assert "<issue>\nTags lose their id.\n</issue>" in row["messages"][1]["content"]


def test_recorded_bundle_paths_of_another_checkout_are_found_in_this_ones_tools_folder_by_name(tmp_path):
    """Runs record absolute bundle paths; a run dir read in another checkout names folders that are not here."""
    _, [here], _ = _convert(tmp_path, runs=[_moved_run(tmp_path, "here", lambda text: text)])
    moved = _moved_run(tmp_path, "moved", lambda text: text.replace('"path": "tools/', '"path": "/gone/checkout/tools/'))
    _, [row], _ = _convert(tmp_path, runs=[moved])
    assert row["messages"] == here["messages"]
    custom = _moved_run(tmp_path, "custom", lambda text: text.replace('"path": "tools/submit"', '"path": "/gone/checkout/mine/my_submit"'))
    summary, train, _ = _convert(tmp_path, runs=[custom])
    [dropped] = summary["dropped_trajectories"]["no_student_prompt"]
    assert train == [] and "\n" not in dropped["error"]
    assert ("key 'agent.tools.bundles.2.path': the recorded bundle /gone/checkout/mine/my_submit does not exist, nor does "
            f"{REPO / 'tools' / 'my_submit'}; name the student's prompt with --prompt_config") in dropped["error"]


def _moved_run(tmp_path: Path, name: str, edit) -> Path:
    """A run dir whose one trajectory recorded the paper config with its bundle paths edited by `edit`."""
    trajectory = build_trajectory("pkg__bug-1", _specs("see"), COMMANDS)
    recorded = json.loads(trajectory.replay_config)
    recorded["agent"] = json.loads(edit(json.dumps(recorded["agent"])))
    trajectory.replay_config = json.dumps(recorded)
    write_trajectory(tmp_path / name, tmp_path / "eval", "pkg__bug-1", trajectory, True)
    return tmp_path / name


def test_oracle_expert_turns_are_kept_with_a_warning(tmp_path, capsys):
    specs = _specs("see")
    specs[1].model_name = specs[2].model_name = "oracle-expert"
    _write(tmp_path / "run", tmp_path / "eval", "pkg__bug-1", specs)
    summary, train, _ = _convert(tmp_path)
    assert len(train) == 1 and summary["warnings"] == {"oracle_turns": [f"{tmp_path / 'run'}/pkg__bug-1"]}
    assert "oracle" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--evals", "nowhere"], "nowhere: eval directory does not exist (option --evals)"),
        (["--evals", "eval", "--val_fraction", "1.5"], "command line: key 'val_fraction': Input should be less than 1"),
        (["--evals", "eval", "--prompt_config", "bad.yaml"], "bad.yaml: key 'agent.tools.parse_function': Input tag 'json'"),
        ([], "--evals is required with --resolved_only"),
        (["--evals", "eval", "--output", "out.txt"], "command line: key 'output': expected a path ending in .jsonl"),
    ],
)
def test_bad_input_is_one_line_naming_the_file_or_option_and_exit_status_2(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "run", tmp_path / "eval", "pkg__bug-1", _specs("se"))
    (tmp_path / "bad.yaml").write_text("agent:\n  tools:\n    parse_function:\n      type: json\n")
    assert main(["--runs", "run", "--output", "out.jsonl", "--quiet", *args]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "Traceback" not in error and len(error.splitlines()) == 1


def test_options_come_from_config_files_and_dotted_keys_and_a_bad_value_names_its_source(tmp_path, capsys):
    for index in range(4):
        _write(tmp_path / "run", tmp_path / "eval", f"pkg__bug-{index}", _specs("sseee", tag=str(index)))
    options = tmp_path / "options.yaml"
    options.write_text(f"runs: [{tmp_path / 'run'}]\nevals: [{tmp_path / 'eval'}]\nval_fraction: 0.5\nmask_student: false\n")
    output = tmp_path / "out" / "sft.jsonl"
    assert main(["--config", str(options), "--output", str(output), "--repetition.scope", "all", "--quiet"]) == 0
    summary = json.loads((tmp_path / "out" / "sft.summary.json").read_text())
    assert (summary["options"]["val_fraction"], summary["options"]["mask_student"]) == (0.5, False)
    assert summary["options"]["repetition"]["scope"] == "all" and summary["rows"] == {"train": 2, "validation": 2}
    options.write_text("val_fraction: 2\n")
    assert main(["--config", str(options), "--run_dir", "run", "--output", str(output), "--no-resolved_only"]) == 2
    assert f"{options}: key 'val_fraction': Input should be less than 1" in capsys.readouterr().err


# ---- files ------------------------------------------------------------------------------------------------------


def test_a_rerun_gives_identical_bytes(tmp_path):
    for index in range(6):
        _write(tmp_path / "run", tmp_path / "eval", f"pkg__bug-{index}", _specs("sseee", tag=str(index)))
    _convert(tmp_path, "--val_fraction", "0.3")
    files = sorted((tmp_path / "out").iterdir())
    first = {path.name: path.read_bytes() for path in files}
    _convert(tmp_path, "--val_fraction", "0.3")
    assert {path.name: path.read_bytes() for path in sorted((tmp_path / "out").iterdir())} == first
    assert set(first) == {"sft.jsonl", "sft.val.jsonl", "sft.summary.json"}


def test_the_shell_script_runs_from_any_directory(tmp_path):
    _write(tmp_path / "run", tmp_path / "eval", "pkg__bug-1", _specs("see"))
    result = subprocess.run([str(REPO / "convert_to_sft.sh"), "--runs", "run", "--evals", "eval", "--output", "data/sft.jsonl"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "data" / "sft.jsonl").read_text().splitlines()) == 1
    assert "rows (train / validation)" in result.stderr


# ---- tokenized export -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen_gguf() -> Path:
    """The real Qwen2.5-Coder-0.5B-Instruct GGUF, fetched and verified by the local-models module."""
    from sweagent.local_models.catalog import get_spec
    from sweagent.local_models.weights import ensure_weights

    return ensure_weights(get_spec("student"))


@pytest.mark.slow
@pytest.mark.parametrize("style", ["xml", "tool"])
def test_the_tokenized_export_trains_exactly_the_expert_turns(tmp_path, qwen_gguf, style):
    from oec.sft.tokenized import IGNORE_INDEX, load_tokenizer

    _write(tmp_path / "run", tmp_path / "eval", "pkg__bug-1", _specs("sssseee"))
    _write(tmp_path / "run", tmp_path / "eval", "pkg__bug-2", _specs("ssseeeeee", tag="b"))
    _, train, _ = _convert(tmp_path, "--tokenizer", str(qwen_gguf), "--style", style, "--val_fraction", "0")
    table = pq.read_table(tmp_path / "out" / "sft.parquet").to_pylist()
    tokenizer = load_tokenizer(qwen_gguf)
    assert [r["traj_id"] for r in table] == [r["traj_id"] for r in train]
    for tokens, row in zip(table, train):
        ids, labels = tokens["input_ids"], tokens["labels"]
        assert len(ids) == len(labels) and all(label in (token, IGNORE_INDEX) for token, label in zip(ids, labels))
        segments, current = [], []
        for token, label in zip(ids, labels):
            if label != IGNORE_INDEX:
                current.append(token)
            elif current:
                segments, current = segments + [current], []
        segments += [current] if current else []
        texts = [tokenizer.decode(segment) for segment in segments]
        experts = [m for m in _assistants(row) if m["weight"] == 1]
        assert len(texts) == len(experts) == len(_assistants(row)) - row["model_switch_idx"]
        for text, message in zip(texts, experts):
            if style == "xml":
                assert text == message["content"] + "<|im_end|>\n"
            else:
                call = message["tool_calls"][0]["function"]
                assert text.startswith(message["content"]) and text.endswith("</tool_call><|im_end|>\n")
                assert f'"name": "{call["name"]}"' in text
        masked = tokenizer.decode([t for t, label in zip(ids, labels) if label == IGNORE_INDEX])
        for student in (m for m in _assistants(row) if m["weight"] == 0):
            assert student["content"] in masked
    first = (tmp_path / "out" / "sft.parquet").read_bytes()
    _convert(tmp_path, "--tokenizer", str(qwen_gguf), "--style", style, "--val_fraction", "0")
    assert (tmp_path / "out" / "sft.parquet").read_bytes() == first


# ---- a real run -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory) -> Path:
    """One real rollout in the sandbox: the scripted student of the demo config hands over to the oracle expert."""
    from sweagent.run.run_batch import main as run_batch

    run = tmp_path_factory.mktemp("real") / "run"
    code = run_batch(["--config", str(REPO / "config/local_oracle_demo.yaml"), "--config", str(REPO / "config/schemes/scripted_student.yaml"),
                      "--agent.model.models.0.model.replay_path", str(REPO / "config/schemes/scripted_student_outputs.yaml"),
                      "--agent.model.switch.start", "3", "--agent.model.switch.end", "3",
                      "--agent.templates.next_step_template", "OBSERVATION in {{working_dir}}:\n{{observation}}",
                      "--instances.slice", ":1", "--output_dir", str(run)])
    ends = [(path.name, load_trajectory(path).info.exit_status, getattr(load_trajectory(path).info, "exit_message", None))
            for path in run.glob("*/*.traj")]
    assert code == 0, ends  # what ended the rollout, when the batch did not finish it
    return run


def _real_row(tmp_path: Path, run: Path, *args: str) -> tuple[dict, object]:
    [traj_file] = run.glob("*/*.traj")
    _, [row], _ = _convert(tmp_path, "--no-resolved_only", "--val_fraction", "0", *args, runs=[run], evals=[])
    return row, load_trajectory(traj_file)


def test_rows_of_a_real_run_open_with_the_exact_messages_its_student_was_sent(tmp_path, oracle_run):
    row, trajectory = _real_row(tmp_path, oracle_run)
    first_query = trajectory.trajectory[0].query  # what the student's model was sent at its first step
    assert trajectory.trajectory[0].model_role == "student"
    assert [m["role"] for m in row["messages"][:2]] == [m["role"] for m in first_query[:2]] == ["system", "user"]
    assert row["messages"][0]["content"].encode() == first_query[0]["content"].encode()
    assert row["messages"][1]["content"].encode() == first_query[1]["content"].encode()
    # full observations: the student's own observation messages, as its history recorded them
    student_observations = [m.text for m in trajectory.history[2:] if m.role == "user" and m.message_type == "observation"][:3]
    assert [m["content"] for m in row["messages"][3:9:2]] == student_observations
    assert any(text.startswith("OBSERVATION in /testbed:\n") for text in student_observations)
    assert row["model_switch_idx"] == 3


def test_a_row_whose_opening_differs_from_the_students_first_query_is_dropped(tmp_path, oracle_run):
    """What the recorded config cannot replay (a template of the bundles' first state, a bundle edited since the
    run) shows as a difference from the recorded query; here the recorded system template is edited."""
    import shutil

    run = tmp_path / "edited"
    shutil.copytree(oracle_run, run)
    [traj_file] = run.glob("*/*.traj")
    data = json.loads(traj_file.read_text())
    recorded = json.loads(data["replay_config"])
    recorded["agent"]["templates"]["system_template"] += " (edited after the run)"
    data["replay_config"] = json.dumps(recorded)
    traj_file.write_text(json.dumps(data))
    summary, train, _ = _convert(tmp_path, "--no-resolved_only", "--val_fraction", "0", runs=[run], evals=[])
    assert train == [] and summary["dropped_trajectories"]["prompt_mismatch"] == [
        {"trajectory": f"{run}/{traj_file.stem}", "error": "opening message 0 (system) differs from the student's first query"}]
    summary, [row], _ = _convert(tmp_path, "--no-resolved_only", "--val_fraction", "0", "--prompt_config", str(REPO / "config/local_demo.yaml"),
                                 runs=[run], evals=[])
    assert summary["dropped"] == {}  # a prompt named on the command line is the user's choice, not a replay


def test_as_seen_rows_show_observations_after_the_students_history_processors(tmp_path, oracle_run):
    full, _ = _real_row(tmp_path, oracle_run)
    seen, _ = _real_row(tmp_path, oracle_run, "--observations", "as_seen")
    observations = lambda row: [m["content"] for m in row["messages"][2:] if m["role"] == "user"]  # noqa: E731
    assert len(observations(full)) > 3  # the demo config keeps the last 3 observations in full
    elided = [text for text in observations(seen) if text.startswith("Old environment output: (")]
    assert len(elided) == len(observations(full)) - 3 and observations(seen)[-3:] == observations(full)[-3:]
    assert not any(text.startswith("Old environment output") for text in observations(full))
    assert [m.get("weight") for m in seen["messages"]] == [m.get("weight") for m in full["messages"]]


@pytest.fixture(scope="module", params=["one_message", "in_history"])
def demo_run(request, tmp_path_factory, oracle_run) -> Path:
    """A real rollout whose student is shown a demonstration (the oracle run's trajectory; in one message or in the
    history) and a strategy message, as SWE-agent 1.1 configs do."""
    from sweagent.run.run_batch import main as run_batch

    [demonstration] = oracle_run.glob("*/*.traj")
    folder = tmp_path_factory.mktemp(f"demo_{request.param}")
    shown = ({"put_demos_in_history": True} if request.param == "in_history" else
             {"demonstration_template": "A solved task, for reference:\n{{demonstration}}\n(end of the reference)"})
    overlay = folder / "demonstrations.yaml"
    overlay.write_text(json.dumps({"agent": {"templates": {
        "demonstrations": [str(demonstration)], **shown,
        "strategy_template": "Work in {{working_dir}}: locate the code, reproduce the bug, fix it, then submit."}}}))
    code = run_batch(["--config", str(REPO / "config/local_oracle_demo.yaml"), "--config", str(REPO / "config/schemes/scripted_student.yaml"),
                      "--config", str(overlay),
                      "--agent.model.models.0.model.replay_path", str(REPO / "config/schemes/scripted_student_outputs.yaml"),
                      "--agent.model.switch.start", "2", "--agent.model.switch.end", "2",
                      "--instances.slice", ":1", "--output_dir", str(folder / "run")])
    assert code == 0, [(p.name, load_trajectory(p).info.exit_status) for p in (folder / "run").glob("*/*.traj")]
    return folder / "run"


def test_rows_open_with_the_demonstrations_and_strategy_message_the_student_was_sent(tmp_path, demo_run):
    row, trajectory = _real_row(tmp_path, demo_run)
    first_query = trajectory.trajectory[0].query
    demos = [m for m in trajectory.history if getattr(m, "is_demo", False)]
    opening = row["opening_messages"]
    assert trajectory.trajectory[0].model_role == "student" and demos
    assert opening == len(demos) + 2  # system prompt, demonstrations, task with the strategy (one message, as SWE-agent)
    assert trajectory.history[opening - 1].text.endswith("then call submit.\nWork in /testbed: locate the code, reproduce the bug, fix it, then submit.")
    unweighted = lambda messages: [{key: value for key, value in m.items() if key != "weight"} for m in messages]  # noqa: E731
    assert json.dumps(unweighted(row["messages"][:opening])).encode() == json.dumps(first_query[:opening]).encode()
    assert [m["weight"] for m in row["messages"][:opening] if m["role"] == "assistant"] == [0] * sum(m.role == "assistant" for m in demos)
    if len(demos) > 1:  # in the history: the demonstration's answers are there, never trained
        assert sum(m["role"] == "assistant" for m in row["messages"][:opening]) > 1
    rollout = _assistants({"messages": row["messages"][opening:]})
    assert row["model_switch_idx"] == 2 and [m["weight"] for m in rollout][:3] == [0, 0, 1]
    from sweagent.inspector.extras import SFTWeights

    inspected = SFTWeights()
    inspected.add(row)  # the inspector shows turn i's weight at step i: a demonstration's answers are no steps
    assert inspected.by_traj_id[row["traj_id"]] == [[m["weight"] for m in rollout]] and len(rollout) == len(trajectory.trajectory)
    seen, _ = _real_row(tmp_path, demo_run, "--observations", "as_seen")
    # as seen at the last turn: demonstrations and the task with its strategy in full, older observations elided
    assert unweighted(seen["messages"][:opening]) == trajectory.trajectory[-1].query[:opening] == unweighted(row["messages"][:opening])
    assert any(m["content"].startswith("Old environment output") for m in seen["messages"][opening:])
