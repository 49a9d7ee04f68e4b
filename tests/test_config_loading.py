"""Configs: YAML files merged in order, dotted overrides, one-line errors naming the source and the key."""

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from sweagent.run.config_loading import ConfigError, build_config, parse_cli, redact
from sweagent.run.run_batch import RunBatchConfig
from sweagent.run.run_single import RunSingleConfig, dump_config

REPO = Path(__file__).resolve().parents[1]


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "a"
    limit: int = 1


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inner: Inner = Inner()
    tags: list[str] = []


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_later_files_and_overrides_win(tmp_path):
    first = write(tmp_path, "a.yaml", "inner: {name: first, limit: 2}\n")
    second = write(tmp_path, "b.yaml", "inner: {name: second}\n")
    files, overrides = parse_cli(["--config", str(first), "--config", str(second), "--inner.limit", "7", "--tags", "[x, y]"])
    config = build_config(Outer, files, overrides)
    assert config.inner.name == "second"
    assert config.inner.limit == 7
    assert config.tags == ["x", "y"]


def test_unknown_key_names_file_and_key(tmp_path):
    bad = write(tmp_path, "bad.yaml", "inner:\n  nmae: typo\n")
    with pytest.raises(ConfigError) as info:
        build_config(Outer, [bad], [])
    message = str(info.value)
    assert str(bad) in message and "inner.nmae" in message and "\n" not in message


def test_override_error_names_the_command_line(tmp_path):
    with pytest.raises(ConfigError, match=r"command line: key 'inner.limit'"):
        build_config(Outer, [], [("inner.limit", "many")])


def test_malformed_yaml_gives_line_number(tmp_path):
    bad = write(tmp_path, "broken.yaml", "inner:\n  name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: line \d+"):
        build_config(Outer, [bad], [])


def test_env_references_expand_with_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("OEC_TEST_NAME", "from-env")
    path = write(tmp_path, "env.yaml", "inner: {name: '${OEC_TEST_NAME}', limit: '${OEC_UNSET_VAR:-5}'}\n")
    config = build_config(Outer, [path], [])
    assert (config.inner.name, config.inner.limit) == ("from-env", 5)


def test_api_key_never_reaches_the_config_dump(tmp_path):
    fake_key = "sk-" + "notarealkey" * 3  # built at run time so no key-shaped string is tracked
    config = build_config(RunSingleConfig, [REPO / "config/default.yaml"], [("agent.model.api_key", fake_key)])
    dumped = dump_config(config)
    assert "notarealkey" not in dumped
    assert redact({"api_key": "x", "max_output_tokens": 3}) == {"api_key": "***redacted***", "max_output_tokens": 3}


def test_overrides_reach_into_lists(tmp_path):
    path = write(tmp_path, "list.yaml", "agent: {model: {type: switching, models: [{model: {name: a}}, {model: {name: b}}], switch: {type: step_count, step: 1}}}\n")
    config = build_config(RunSingleConfig, [path], [("agent.model.models.1.model.per_instance_call_limit", 4)])
    assert config.agent.model.models[1].model.per_instance_call_limit == 4
    with pytest.raises(ConfigError, match="not an index"):
        build_config(RunSingleConfig, [path], [("agent.model.models.5.model.name", "c")])


def test_a_dotted_type_override_picks_another_variant_without_the_old_keys():
    # What scripts/run_pipeline.sh does for its student-only and expert-only groups.
    demo = Path(__file__).parents[1] / "config" / "local_oracle_demo.yaml"
    never = build_config(RunBatchConfig, [demo], [("agent.model.switch.type", "never")])
    assert never.agent.model.switch.type == "never"
    step = build_config(RunBatchConfig, [demo], [("agent.model.switch.type", "step_count"), ("agent.model.switch.step", "0")])
    assert (step.agent.model.switch.type, step.agent.model.switch.step) == ("step_count", 0)


def test_an_overlay_extends_its_base_and_changes_one_list_entry_by_its_dotted_path(tmp_path):
    write(tmp_path, "base.yaml", "agent: {model: {type: switching, models: [{model: {name: a, per_instance_call_limit: 3}}, "
                                 "{model: {name: b, api_base: 'http://x'}}], switch: {type: step_count, step: 1}}}\n")
    overlay = write(tmp_path, "overlay.yaml", "extends: base.yaml\nagent.model.models.0.model.per_instance_call_limit: 9\n"
                                              "agent.model.models.1.model: {type: replay, name: r, replay_path: r.yaml}\n")
    config = build_config(RunSingleConfig, [overlay], [])
    student, expert = config.agent.model.models
    assert (student.model.name, student.model.per_instance_call_limit) == ("a", 9)
    assert (expert.model.type, expert.model.name) == ("replay", "r")  # another type: none of the old model's keys


def test_the_oracle_demo_is_the_local_demo_with_an_oracle_expert():
    demo, oracle = (build_config(RunBatchConfig, [REPO / "config" / name], []) for name in ("local_demo.yaml", "local_oracle_demo.yaml"))
    assert oracle.agent.model.models[0] == demo.agent.model.models[0].model_copy(
        update={"model": demo.agent.model.models[0].model.model_copy(update={"per_instance_call_limit": 10})})
    assert oracle.agent.model.models[1].model.type == "oracle"
    assert (oracle.agent.templates, oracle.agent.tools, oracle.env) == (demo.agent.templates, demo.agent.tools, demo.env)


@pytest.mark.parametrize(("text", "message"), [
    ("extends: missing.yaml\n", "key 'extends': config file '{dir}/missing.yaml' does not exist"),
    ("extends: loop.yaml\n", "loop.yaml: key 'extends': the files extend each other in a circle"),
    ("extends: {a: 1}\n", "key 'extends': expected a config file path or a list of them"),
])
def test_a_bad_extends_is_one_line_naming_the_file(tmp_path, text, message):
    path = write(tmp_path, "loop.yaml", text)
    with pytest.raises(ConfigError) as info:
        build_config(Outer, [path], [])
    assert message.format(dir=tmp_path) in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize(("override", "key"), [
    (("agent.model.switch.end", "x"), "agent.model.switch.end"),
    (("agent.model.models.0.model.temperature", "hot"), "agent.model.models.0.model.temperature"),
    (("agent.tools.parse_function.type", "json"), "agent.tools.parse_function"),
    (("env.deployment.memory_mb", "1"), "env.deployment.memory_mb"),
])
def test_errors_name_the_key_as_the_user_wrote_it_and_blame_the_command_line_for_its_values(override, key):
    # pydantic's locations carry union tags (agent.default.model.switching.switch.random_step_range.end)
    with pytest.raises(ConfigError) as info:
        build_config(RunBatchConfig, [REPO / "config" / "local_demo.yaml"], [override])
    assert str(info.value).startswith(f"command line: key '{key}': ")
