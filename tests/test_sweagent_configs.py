"""A SWE-agent 1.1 user's configs run unchanged: the 15 YAML files of SWE-agent v1.1.0's `config/` folder (kept as
fixtures, nothing fetched) load, demonstrations reach the prompt as SWE-agent puts them there, the retry agent
keeps every attempt and picks one, and the config SWE-smith's expert trajectories came from solves a demo instance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from oec.evaluation.reports import read_report
from oec.evaluation.run import evaluate_run
from sweagent.agent.agents import AgentConfig
from sweagent.agent.retry_agent import RetryAgentConfig
from sweagent.environment.problem import LocalRepoProblem
from sweagent.run.config_loading import ConfigError, build_config
from sweagent.run.run_batch import RunBatchConfig, run_batch
from sweagent.run.run_single import RunSingleConfig, check_agent, dump_config, run_one
from sweagent.tools.bundles import REPO_ROOT
from sweagent.trajectory import Trajectory, load_trajectory
from conftest import XML_TOOLS, make_calc_repo

FIXTURES = Path(__file__).parent / "fixtures" / "sweagent_1_1_configs"
CONFIGS = sorted(FIXTURES.rglob("*.yaml"))
INSTANCES = REPO_ROOT / "config/demo/instances.json"
FIX = ("<function=str_replace_editor><parameter=command>str_replace</parameter><parameter=path>/testbed/calc.py"
       "</parameter><parameter=old_str>a - b</parameter><parameter=new_str>a + b</parameter></function>")
SUBMIT = "Done.\n<function=submit></function>"


def bash(command: str) -> str:
    return f"Let me run this.\n<function=bash><parameter=command>{command}</parameter></function>"


def load(path: Path) -> RunBatchConfig:
    """As a user runs it: `--agent.model.name` given where the agent has one model (a retry agent names its own)."""
    data = yaml.safe_load(path.read_text())
    overrides = [] if data["agent"].get("type") == "retry" else [("agent.model.name", "gpt-4o")]
    return build_config(RunBatchConfig, [path], overrides)


def test_the_fixtures_are_all_of_sweagent_1_1s_configs_with_their_license():
    assert len(CONFIGS) == 15
    assert "MIT License" in (FIXTURES / "LICENSE").read_text() and (FIXTURES / "NOTICE").is_file()


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(FIXTURES)) for p in CONFIGS])
def test_every_sweagent_1_1_config_loads_and_passes_run_batchs_preflight_check(path, tmp_path, monkeypatch):
    """The check renders every template (with demonstrations) and builds every model, as run-batch does first."""
    monkeypatch.setenv("SWE_AGENT_CONFIG_ROOT", str(tmp_path))  # the configs' demonstrations, recorded by us
    for demo in yaml.safe_load(path.read_text())["agent"].get("templates", {}).get("demonstrations", []):
        (tmp_path / demo).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / demo).write_text(json.dumps({"history": [{"role": "system", "content": "S"}, {"role": "user", "content": "Fix it"},
                                                             {"role": "assistant", "content": "Fixed.", "action": "submit"}]}))
    config = load(path)
    agents = config.agent.agent_configs if isinstance(config.agent, RetryAgentConfig) else [config.agent]
    for agent in agents:
        assert agent.tools.bundles and all((bundle.path / "config.yaml").is_file() for bundle in agent.tools.bundles)
        assert agent.tools.commands  # every bundle's commands read
    check_agent(config.agent, config.env, LocalRepoProblem(make_calc_repo(tmp_path), "add() subtracts", "calc"))


def test_sweagent_keys_keep_their_meaning():
    heavy = load(FIXTURES / "benchmarks/250212_sweagent_heavy_sbl.yaml").agent
    assert isinstance(heavy, RetryAgentConfig) and len(heavy.agent_configs) == 3
    assert heavy.retry_loop.type == "chooser" and heavy.retry_loop.max_attempts == 10 and heavy.retry_loop.cost_limit == 6.0
    assert [p.type for p in heavy.agent_configs[2].history_processors] == ["remove_regex", "cache_control"]
    assert heavy.agent_configs[2].history_processors[1].last_n_messages_offset == 2
    fcalling = load(FIXTURES / "sweagent_0_7/07_fcalling.yaml").agent
    assert isinstance(fcalling, AgentConfig) and fcalling.templates.put_demos_in_history
    assert fcalling.templates.demonstrations[0] == REPO_ROOT / (
        "trajectories/demonstrations/replay__marshmallow-code__marshmallow-1867__function_calling__install-1/"
        "marshmallow-code__marshmallow-1867.traj")
    assert fcalling.tools.state_commands == ["_state"]
    assert [c.name for c in fcalling.tools.commands if c.end_name] == ["edit"]
    assert load(FIXTURES / "sweagent_0_7/07_thought_action_xml.yaml").agent.tools.parse_function.type == "xml_thought_action"
    assert load(FIXTURES / "exotic/windowed_replace_late_repro.yaml").agent.tools.submit_command == "submit -f"
    assert load(FIXTURES / "human/human.yaml").env.deployment.type == "docker"  # `deployment: {image: ...}` as in SWE-agent


def test_a_missing_demonstration_is_one_line_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SWE_AGENT_CONFIG_ROOT", str(tmp_path))
    config = load(FIXTURES / "sweagent_0_7/07.yaml")
    problem = LocalRepoProblem(make_calc_repo(tmp_path), "add() subtracts", "calc")
    with pytest.raises(ConfigError) as error:
        check_agent(config.agent, config.env, problem)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "trajectories/demonstrations") in message and "does not exist" in message


def _run(tmp_path: Path, name: str, agent: dict) -> tuple:
    folder = tmp_path / name
    folder.mkdir()
    config_file = folder / "config.yaml"
    config_file.write_text(yaml.safe_dump({"agent": agent, "output_dir": str(folder / "out")}))
    config = build_config(RunSingleConfig, [config_file], [])
    problem = LocalRepoProblem(make_calc_repo(tmp_path), "add() subtracts instead of adding", "calc")
    check_agent(config.agent, config.env, problem)
    trajectory = run_one(config.agent, config.env, problem, output_dir=config.output_dir, traj_id="calc",
                         replay_config=dump_config(config))
    return trajectory, folder / "out" / "calc"


def _replay_agent(folder: Path, name: str, outputs: list, **templates) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(outputs))
    return {"templates": {"system_template": "SYSTEM {{command_docs}}", "instance_template": "TASK {{problem_statement}}", **templates},
            "tools": XML_TOOLS,
            "model": {"type": "replay", "replay_path": str(folder / f"{name}.yaml"), "name": name}}


@pytest.fixture()
def demonstration(tmp_path) -> Path:
    """A demonstration recorded by OEC itself: a replayed rollout that fixes the bug."""
    trajectory, run_dir = _run(tmp_path, "demo", _replay_agent(tmp_path / "models", "demo", [bash("grep -n return calc.py"), FIX, SUBMIT]))
    assert trajectory.info.exit_status == "submitted"
    return run_dir / "calc.traj"


def test_demonstrations_are_shown_in_one_message_or_put_in_the_history(tmp_path, demonstration):
    outputs = [bash("echo hi"), SUBMIT]
    shown, _ = _run(tmp_path, "shown", _replay_agent(tmp_path / "models", "shown", outputs, demonstrations=[str(demonstration)],
                                                     demonstration_template="Here is a demonstration:\n{{demonstration}}\n(end)"))
    roles = [(m.role, m.message_type) for m in shown.history[:3]]
    assert roles == [("system", "system_prompt"), ("user", "demonstration"), ("user", "observation")]
    demo_text = shown.history[1].text
    assert demo_text.startswith("Here is a demonstration:\nTASK add() subtracts") and "a + b" in demo_text and "SYSTEM" not in demo_text
    assert shown.history[1].is_demo and shown.history[2].text == "TASK add() subtracts instead of adding"
    assert shown.trajectory[0].query[1]["content"] == demo_text  # the model saw it

    in_history, _ = _run(tmp_path, "in_history", _replay_agent(tmp_path / "models", "in_history", outputs,
                                                               demonstrations=[str(demonstration)], put_demos_in_history=True))
    recorded = load_trajectory(demonstration).history
    demo_messages = [m for m in in_history.history if getattr(m, "is_demo", False)]
    assert [m.text for m in demo_messages] == [m.text for m in recorded if m.role != "system"]
    assert in_history.history[len(demo_messages) + 1].text == "TASK add() subtracts instead of adding"
    assert [m.text for m in in_history.assistant_messages()] == outputs  # demonstration answers are not the rollout's
    assert len(in_history.trajectory[0].query) == len(demo_messages) + 2

    yaml_demo = tmp_path / "demo.yaml"  # SWE-agent's demo YAML: a `history` list
    yaml_demo.write_text(yaml.safe_dump({"history": [{"role": "user", "content": "Fix it"}, {"role": "assistant", "content": "Fixed."}]}))
    from_yaml, _ = _run(tmp_path, "from_yaml", _replay_agent(tmp_path / "models", "from_yaml", outputs, demonstrations=[str(yaml_demo)],
                                                             demonstration_template="DEMO\n{{demonstration}}"))
    assert from_yaml.history[1].text == "DEMO\nFix it\nFixed."


def test_the_retry_agent_keeps_every_attempt_and_takes_the_choosers_pick(tmp_path):
    models = tmp_path / "models"
    lazy = _replay_agent(models, "lazy", [bash("touch leftover.txt && ls"), SUBMIT])
    fixer = _replay_agent(models, "fixer", [bash("ls"), FIX, SUBMIT])
    (models / "chooser.yaml").write_text(yaml.safe_dump(["The second patch fixes add().\n1"]))
    chooser = {"model": {"type": "replay", "replay_path": str(models / "chooser.yaml"), "name": "chooser"},
               "system_template": "Pick one.", "instance_template": "{{problem_statement}}\n{% for s in submissions %}{{loop.index0}}: {{s}}\n{% endfor %}",
               "submission_template": "{{submission}}\n{{exit_status}}"}
    trajectory, run_dir = _run(tmp_path, "retry", {"type": "retry", "agent_configs": [lazy, fixer],
                                                   "retry_loop": {"type": "chooser", "chooser": chooser, "max_attempts": 2, "cost_limit": 0}})
    assert "leftover.txt" not in trajectory.trajectory[0].observation  # attempt 1 ran in a fresh environment
    assert trajectory.info.retry["best_attempt_idx"] == 1 and trajectory.info.retry["chooser_response"].endswith("\n1")
    assert "+    return a + b" in trajectory.info.submission
    assert [a["info"]["retry_attempt"] for a in trajectory.attempts] == [{"index": 0, "chosen": False}, {"index": 1, "chosen": True}]
    assert "leftover.txt" in trajectory.attempts[0]["info"]["submission"]
    assert "0: diff --git a/leftover.txt" in trajectory.info.retry["chooser_messages"][1]["content"]
    saved = load_trajectory(run_dir / "calc.traj")
    assert saved.info.retry["best_attempt_idx"] == 1 and len(saved.attempts) == 2
    assert json.loads((run_dir / "calc.pred").read_text())["model_patch"] == trajectory.info.submission
    assert (run_dir / "attempts/attempt_0/attempt_0.traj").is_file() and (run_dir / "attempts/attempt_1/attempt_1.traj").is_file()
    again = Trajectory.model_validate(saved.attempts[1])  # each embedded attempt reads as a whole trajectory
    assert again.trajectory[-1].query == load_trajectory(run_dir / "attempts/attempt_1/attempt_1.traj").trajectory[-1].query


def test_the_score_loop_stops_at_an_accepted_attempt_and_takes_the_best_score(tmp_path):
    models = tmp_path / "models"
    lazy = _replay_agent(models, "lazy", [SUBMIT])
    fixer = _replay_agent(models, "fixer", [FIX, SUBMIT])
    (models / "reviewer.yaml").write_text(yaml.safe_dump(["Nothing changed.\n2", "Correct fix.\n9"]))
    reviewer = {"system_template": "Score it.", "instance_template": "{{problem_statement}}\n{{traj}}\n{{submission}}",
                "traj_formatter": {"item_template": "{{action}} -> {{observation}}"}, "n_sample": 1}
    trajectory, _ = _run(tmp_path, "score", {"type": "retry", "agent_configs": [lazy, fixer], "retry_loop": {
        "type": "score", "reviewer_config": reviewer, "accept_score": 5, "max_attempts": 4, "cost_limit": 0,
        "model": {"type": "replay", "replay_path": str(models / "reviewer.yaml"), "name": "reviewer"}}})
    assert [review["score"] for review in trajectory.info.retry["reviews"]] == [2.0, 9.0]
    assert trajectory.info.retry["n_attempts"] == 2 and trajectory.info.retry["best_attempt_idx"] == 1
    assert "+    return a + b" in trajectory.info.submission


@pytest.mark.slow
def test_the_swesmith_expert_config_solves_a_demo_instance_with_the_oracle_standing_in_for_claude(tmp_path):
    """config/benchmarks/250225_anthropic_filemap_simple_review.yaml, unchanged but for the model."""
    instance_id = json.loads(INSTANCES.read_text())[0]["instance_id"]
    config = build_config(RunBatchConfig, [FIXTURES / "benchmarks/250225_anthropic_filemap_simple_review.yaml"], [
        ("agent.model.type", "oracle"), ("agent.model.name", "oracle"), ("instances.path", str(INSTANCES)),
        ("instances.filter", f"^{instance_id}$"), ("output_dir", str(tmp_path / "run"))])
    assert run_batch(config) == {"submitted": 1}
    trajectory = load_trajectory(tmp_path / "run" / instance_id / f"{instance_id}.traj")
    actions = [step.action for step in trajectory.trajectory]
    assert actions[-2:] == ["submit", "submit"]  # review_on_submit_m: the first submit shows the review message
    assert "Here is a list of all of your changes" in trajectory.trajectory[-2].observation
    assert "diff --git" in trajectory.trajectory[-2].observation and "{{diff}}" not in trajectory.trajectory[-2].observation
    assert trajectory.trajectory[-1].state["diff"]  # diff_state reported the change
    evaluate_run(tmp_path / "run", instances_file=INSTANCES, eval_dir=tmp_path / "eval", workers=1)
    assert read_report(tmp_path / "eval" / instance_id / "report.json").resolved is True


def test_sweagent_history_processor_keys():
    from sweagent.agent.history_processors import CacheControl, LastNObservations, RemoveRegex

    observations = [{"role": "user", "content": f"out{i}", "message_type": "observation"} for i in range(8)]
    observations[2]["is_demo"] = True  # demonstrations are never elided, nor counted
    observations[3]["tags"] = ["keep_output"]
    shown = [m["content"] for m in LastNObservations(n=2, polling=3)(observations)]
    old = "Old environment output: (1 lines omitted)"
    # 7 observations counted, polled down to 6, minus the last 2: the 2nd..4th counted ones elided (task and tags kept)
    assert shown == ["out0", old, "out2", "out3", old, "out5", "out6", "out7"]
    diffs = [{"role": "user", "content": f"<diff>\nd{i}\n</diff>obs{i}"} for i in range(3)]
    assert [m["content"] for m in RemoveRegex(keep_last=1)(diffs)] == ["obs0", "obs1", "<diff>\nd2\n</diff>obs2"]
    marked = CacheControl(last_n_messages=1, last_n_messages_offset=1)(diffs)
    assert [isinstance(m["content"], list) for m in marked] == [False, True, False]


@pytest.mark.slow
def test_a_retry_agent_of_switching_rollouts_is_a_best_of_n_expert(tmp_path):
    """Each attempt is a student prefix handed to the expert; the chosen one keeps its roles and info.oec."""
    instance_id = json.loads(INSTANCES.read_text())[0]["instance_id"]
    (tmp_path / "student.yaml").write_text(yaml.safe_dump([bash("ls")]))
    (tmp_path / "chooser.yaml").write_text(yaml.safe_dump(["Both pass; the second.\n1"]))
    attempt = {"templates": {"system_template": "{{command_docs}}\n{{format_instructions}}"},
               "tools": XML_TOOLS,
               "model": {"type": "switching", "switch": {"type": "step_count", "step": 1}, "models": [
                   {"model": {"type": "replay", "replay_path": str(tmp_path / "student.yaml"), "name": "student"}},
                   {"model": {"type": "oracle", "instances_path": str(INSTANCES)}}]}}
    chooser = {"model": {"type": "replay", "replay_path": str(tmp_path / "chooser.yaml"), "name": "chooser"},
               "system_template": "Pick.", "instance_template": "{% for s in submissions %}{{loop.index0}}: {{s}}\n{% endfor %}",
               "submission_template": "{{submission}}"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "agent": {"type": "retry", "agent_configs": [attempt],
                  "retry_loop": {"type": "chooser", "chooser": chooser, "max_attempts": 2, "cost_limit": 0}},
        "instances": {"path": str(INSTANCES), "filter": f"^{instance_id}$"}, "output_dir": str(tmp_path / "run")}))
    assert run_batch(build_config(RunBatchConfig, [tmp_path / "config.yaml"], [])) == {"submitted": 1}
    trajectory = load_trajectory(tmp_path / "run" / instance_id / f"{instance_id}.traj")
    assert trajectory.info.retry["best_attempt_idx"] == 1 and trajectory.info.oec.switched_at_step == 1
    assert trajectory.step_roles()[0] == "student" and set(trajectory.step_roles()[1:]) == {"expert"}
    assert [a["info"]["oec"]["switched_at_step"] for a in trajectory.attempts] == [1, 1]
