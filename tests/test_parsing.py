"""The three parse functions: what models may write, what they are told when they get it wrong, and that an
action survives every conversion between native tool calls, XML function calls and fenced shell blocks."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from sweagent.agent.templates import render
from sweagent.tools.bundles import Bundle
from sweagent.tools.parsing import (
    FormatError,
    FunctionCallingParser,
    ParseFunctionConfig,
    ThoughtActionParser,
    ToolCall,
    XMLFunctionCallingParser,
    action_to_call,
    call_to_action,
    convert_messages,
    convert_output,
)
from sweagent.tools.tools import ToolConfig

COMMANDS = ToolConfig(bundles=[Bundle(path="tools/registry"), Bundle(path="tools/edit_anthropic"),
                               Bundle(path="tools/review_on_submit_m")]).commands
FC, XML, TICKS = FunctionCallingParser(), XMLFunctionCallingParser(), ThoughtActionParser()

HEREDOC = "cat > /testbed/reproduce.py <<'EOF'\nimport re\nprint(re.sub(r'a|b', '<x>', \"ab\"))\nEOF\npython /testbed/reproduce.py"
CODE_WITH_MARKUP = (
    "def render(tag: str) -> str:\n"
    "    # emits <div class=\"x\">&amp;</div> and a literal </parameter> and </function>\n"
    "    return f'<{tag}>' + \"</\" + tag + '>'  # $HOME `ls` \\n\n"
    "```\nnot a fence for the parser\n```\n"
)
CALLS = [
    ToolCall("bash", {"command": "ls -la /testbed"}),
    ToolCall("bash", {"command": HEREDOC}),
    ToolCall("bash", {"command": "grep -rn 'def foo' /testbed | head -n 5 && echo \"done: $?\""}),
    ToolCall("str_replace_editor", {"command": "view", "path": "/testbed/a.py", "view_range": [10, -1]}),
    ToolCall("str_replace_editor", {"command": "create", "path": "/testbed/pkg/new file.py", "file_text": CODE_WITH_MARKUP}),
    ToolCall("str_replace_editor", {"command": "str_replace", "path": "/testbed/a.py", "old_str": "    x = 1\n", "new_str": ""}),
    ToolCall("str_replace_editor", {"command": "insert", "path": "/testbed/a.py", "insert_line": 0, "new_str": "import os\n\n"}),
    ToolCall("str_replace_editor", {"command": "str_replace", "path": "/testbed/é.py", "old_str": "--flag", "new_str": "'quoted' \"twice\""}),
    ToolCall("submit", {}),
    ToolCall("submit", {"force": True}),
]


def _xml(name: str, **parameters: str) -> str:
    inner = "".join(f"<parameter={key}>{value}</parameter>\n" for key, value in parameters.items())
    return f"<function={name}>\n{inner}</function>"


def _native(name: str, arguments: str | dict, call_id: str = "call_1") -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# ---- reading well-formed answers --------------------------------------------------------------------------------


def test_function_calling_reads_one_native_call_with_its_id_and_the_text_as_thought():
    arguments = json.dumps({"command": "view", "path": "/testbed", "view_range": [1, 20]})
    parsed = FC.parse("Let me look around.", [_native("str_replace_editor", arguments, "toolu_01")], COMMANDS)
    assert parsed.thought == "Let me look around."
    assert parsed.call == ToolCall("str_replace_editor", {"command": "view", "path": "/testbed", "view_range": [1, 20]}, "toolu_01")
    assert parsed.action == "str_replace_editor view /testbed --view_range 1 20"


def test_function_calling_accepts_arguments_already_decoded_and_null_content():
    parsed = FC.parse(None, [_native("bash", {"command": "pwd"})], COMMANDS)
    assert (parsed.thought, parsed.action) == ("", "pwd")


def test_xml_reads_the_call_and_keeps_surrounding_text_as_thought():
    content = f"The test imports `foo`; let me find it.\n\n{_xml('bash', command='grep -rn foo /testbed')}\n"
    parsed = XML.parse(content, None, COMMANDS)
    assert parsed.thought == "The test imports `foo`; let me find it."
    assert parsed.call == ToolCall("bash", {"command": "grep -rn foo /testbed"})
    assert parsed.action == "grep -rn foo /testbed"


def test_xml_multiline_heredoc_value_is_kept_exactly():
    content = f"Reproduce first.\n<function=bash>\n<parameter=command>\n{HEREDOC}\n</parameter>\n</function>"
    assert XML.parse(content, None, COMMANDS).action == HEREDOC


def test_xml_converts_typed_parameters_and_builds_the_tool_command_line():
    content = _xml("str_replace_editor", command="view", path="/testbed/a.py", view_range="[5, 9]")
    parsed = XML.parse(content, None, COMMANDS)
    assert parsed.call.arguments == {"command": "view", "path": "/testbed/a.py", "view_range": [5, 9]}
    assert parsed.action == "str_replace_editor view /testbed/a.py --view_range 5 9"


def test_thought_action_takes_the_last_fenced_block_and_ignores_its_info_string():
    content = "Here is what failed:\n```\nTraceback ...\n```\nSo I rerun it:\n```bash\npython -m pytest -x tests/\n```\n"
    parsed = TICKS.parse(content, None, COMMANDS)
    assert parsed.action == "python -m pytest -x tests/"
    assert parsed.call == ToolCall("bash", {"command": "python -m pytest -x tests/"})
    assert parsed.thought == "Here is what failed:\n```\nTraceback ...\n```\nSo I rerun it:"


def test_thought_action_recognises_a_tool_invocation_typed_by_the_model():
    parsed = TICKS.parse('Open it.\n```\nstr_replace_editor view "/testbed/my file.py" --view_range 3 4\n```', None, COMMANDS)
    assert parsed.call == ToolCall("str_replace_editor", {"command": "view", "path": "/testbed/my file.py", "view_range": [3, 4]})
    assert parsed.action == 'str_replace_editor view "/testbed/my file.py" --view_range 3 4'


# ---- malformed answers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool_calls", "message"),
    [
        (None, "no tool call"),
        ([], "no tool call"),
        ([_native("bash", '{"command": "ls"}', "a"), _native("bash", '{"command": "pwd"}', "b")], "2 tool calls"),
        ([_native("edit", '{"path": "/x"}')], "unknown function 'edit'; the available functions are: bash, str_replace_editor, submit"),
        ([_native("bash", '{"command": "ls"')], "arguments of 'bash' are not valid JSON"),
        ([_native("bash", '["ls"]')], "must be a JSON object"),
        ([_native("str_replace_editor", '{"command": "view"}')], "missing required parameter(s) path for 'str_replace_editor'"),
        ([_native("bash", '{"command": "ls", "timeout": 5}')], "unknown parameter(s) timeout for 'bash'"),
        ([_native("str_replace_editor", '{"command": "delete", "path": "/x"}')], "must be one of view, create, str_replace, insert, undo_edit"),
        ([_native("str_replace_editor", '{"command": "insert", "path": "/x", "insert_line": "two"}')], "'insert_line' of 'str_replace_editor' must be an integer"),
    ],
)
def test_function_calling_rejects_malformed_calls_with_a_useful_message(tool_calls, message):
    with pytest.raises(FormatError) as caught:
        FC.parse("thinking", tool_calls, COMMANDS)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("I think we are done.", "no function call"),
        ("```\nls\n```", "no function call"),
        (_xml("bash", command="ls") + "\n" + _xml("bash", command="pwd"), "more than one function call"),
        (_xml("bash", command="ls") + "\nthen <function=bash>", "more than one function call"),
        ("<function=bash>\n<parameter=command>ls", "not closed with </function>"),
        (_xml("run", command="ls"), "unknown function 'run'"),
        (_xml("str_replace_editor", command="view"), "missing required parameter(s) path"),
        (_xml("bash", command="ls", cwd="/"), "unknown parameter(s) cwd for 'bash'"),
        ("<function=bash>\n<parameter=command>ls\n</function>", "'command' of 'bash' is not closed with </parameter>"),
        ("<function=bash>\nls -la\n</function>", "expected <parameter=NAME> inside <function=bash>"),
        (_xml("str_replace_editor", command="view", path="/a", view_range="1 to 5"), "'view_range' of 'str_replace_editor' must be a JSON list of integer values"),
    ],
)
def test_xml_rejects_malformed_answers_with_a_useful_message(content, message):
    with pytest.raises(FormatError) as caught:
        XML.parse(f"Thought.\n{content}", None, COMMANDS)
    assert message in str(caught.value)


def test_xml_call_cut_at_the_stripped_stop_sequence_is_complete():
    """The paper's student config stops at `</function>`, and vLLM and llama.cpp leave the stop sequence out."""
    parsed = XML.parse("List it.\n<function=bash>\n<parameter=command>ls -la</parameter>\n", None, COMMANDS)
    assert parsed.call == ToolCall("bash", {"command": "ls -la"}) and parsed.thought == "List it."
    assert XML.parse("Done.\n<function=submit>\n", None, COMMANDS).call == ToolCall("submit", {})


@pytest.mark.parametrize("language", ["python", "py", "Python3"])
def test_a_fenced_block_tagged_python_is_not_run_as_a_shell_command(language):
    content = f"Check the fix:\n```{language}\nfrom addict import Dict\nprint(Dict(a={{'b': 2}}))\n```"
    with pytest.raises(FormatError) as caught:
        TICKS.parse(content, None, COMMANDS)
    assert f"tagged `{language.lower()}`, so it was not run" in str(caught.value)
    assert "python /tmp/check.py" in str(caught.value)
    assert TICKS.parse(content.replace(f"```{language}", "```bash"), None, COMMANDS).action.startswith("from addict")


def test_xml_value_may_contain_closing_tags_and_the_tags_of_parameters_already_given():
    value = "a</parameter>\n<parameter=command>b</parameter>\n</function>c"
    content = _xml("str_replace_editor", command="create", path="/p", file_text=value)
    assert XML.parse(content, None, COMMANDS).call.arguments["file_text"] == value


@pytest.mark.parametrize(
    ("content", "message"),
    [("I would run ls now.", "no command in a ``` fenced code block"), ("Run:\n```\nls -la\n", "code block is not closed")],
)
def test_thought_action_rejects_answers_without_a_closed_block(content, message):
    with pytest.raises(FormatError) as caught:
        TICKS.parse(content, None, COMMANDS)
    assert message in str(caught.value)


@pytest.mark.parametrize("parser", [FC, XML, TICKS])
def test_format_error_template_shows_the_error_to_the_model(parser):
    text = render(parser.format_error_template, error="your answer has no function call")
    assert "your answer has no function call" in text and "{{" not in text


def test_text_parsers_explain_their_format_for_the_system_prompt():
    assert "<function=FUNCTION_NAME>" in XML.format_instructions()
    assert "```" in TICKS.format_instructions()
    assert FC.format_instructions()


# ---- the command line -------------------------------------------------------------------------------------------


def _argv_via_bash(action: str, tmp_path: Path) -> list[str]:
    """What a tool executable receives when bash runs `action` (a probe on PATH prints its argv as JSON)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("str_replace_editor", "submit"):
        probe = bin_dir / name
        probe.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
        probe.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", action], capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout)


@pytest.mark.parametrize("call", [c for c in CALLS if c.name != "bash"], ids=lambda c: str(c.arguments)[:40])
def test_tool_command_lines_reach_the_executable_as_the_declared_words(call, tmp_path):
    action = call_to_action(call, COMMANDS)
    expected = [call.arguments["command"], call.arguments["path"]] if call.name == "str_replace_editor" else []
    for name in ("file_text", "old_str", "new_str", "insert_line", "view_range", "force"):
        value = call.arguments.get(name)
        if value is True:
            expected.append(f"--{name}")
        elif value is not None:
            expected += [f"--{name}", *(map(str, value) if isinstance(value, list) else [str(value)])]
    assert _argv_via_bash(action, tmp_path) == expected


def test_a_typed_line_becomes_a_tool_call_only_when_it_runs_exactly_like_that_call():
    """Random lines full of quoting, escapes and shell syntax: what bash passes the tool for the typed line and
    for the recognised call's own command line must be the same words."""
    rng = random.Random(11)
    plain = ["a", "é", "x.py", "--new_str", "'x y'", '"q r"', '"a\\"b"', "'\\$ `'", "\\ ", "\\'", '"\\\\"', "'\n'", '"\n"']
    hostile = ["'", '"', "\\", "$x", '"\\$"', "`", "*", "~", "#", ";", "|", " > f", "\n"]
    probe = "str_replace_editor() { printf '%s\\0' \"$@\"; }\n"
    recognised = 0
    for _ in range(150):
        old, new = ("".join(rng.choice(plain if rng.random() < 0.85 else hostile) for _ in range(rng.randint(1, 3)))
                    for _ in range(2))
        line = f"str_replace_editor str_replace /p --old_str {old} --new_str {new}"
        call = action_to_call(line, COMMANDS)
        if call.name == "bash":
            assert call.arguments == {"command": line}
            continue
        recognised += 1
        typed, canonical = (subprocess.run(["bash", "-c", probe + text], capture_output=True, text=True, check=True).stdout
                            for text in (line, call_to_action(call, COMMANDS)))
        assert typed == canonical and typed.startswith("str_replace\0/p\0--old_str\0")
    assert 30 <= recognised <= 140


def test_bash_actions_run_verbatim_and_stay_bash_calls():
    for command in [HEREDOC, "ls | wc -l", "echo $HOME > out.txt", "cd /testbed; submit", "FOO=1 python x.py", "bash -c 'ls'"]:
        assert call_to_action(ToolCall("bash", {"command": command}), COMMANDS) == command
        assert action_to_call(command, COMMANDS) == ToolCall("bash", {"command": command})


@pytest.mark.parametrize(
    "action",
    [
        "str_replace_editor view /testbed/*.py",  # a glob bash would expand
        "str_replace_editor view $ROOT/a.py",  # an expansion
        "str_replace_editor view /a.py > out",  # a redirection
        "str_replace_editor view /a.py && ls",  # a second command
        "str_replace_editor view /a.py extra",  # more words than the tool takes
        "str_replace_editor view",  # a required argument missing
        "str_replace_editor view /a.py --view_range one two",  # a non-integer
        "str_replace_editor view /a.py --color",  # an unknown option
        "submit \\\n --force",  # a line continuation
    ],
)
def test_actions_that_are_not_exactly_one_tool_invocation_stay_bash_verbatim(action):
    assert action_to_call(action, COMMANDS) == ToolCall("bash", {"command": action})


def test_each_action_has_one_form_and_ambiguous_ones_are_refused():
    for arguments in ({"force": False}, {"force": None}, {}):
        assert call_to_action(ToolCall("submit", arguments), COMMANDS) == "submit"
    with pytest.raises(FormatError, match="unknown function 'open'"):
        call_to_action(ToolCall("open", {"path": "/a"}), COMMANDS)
    with pytest.raises(FormatError, match="parameter 'path' of 'str_replace_editor' cannot be '--old_str'"):
        call_to_action(ToolCall("str_replace_editor", {"command": "view", "path": "--old_str"}), COMMANDS)


# ---- round trips ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", CALLS, ids=lambda c: f"{c.name}:{str(c.arguments)[:30]}")
def test_every_call_survives_every_format_and_the_command_line(call):
    assert action_to_call(call_to_action(call, COMMANDS), COMMANDS) == call
    for parser in (FC, XML, TICKS):
        rendered = parser.render("Reasoning first.", call, COMMANDS)
        parsed = parser.parse(rendered.content, rendered.tool_calls, COMMANDS)
        assert (parsed.thought, parsed.call.name, parsed.call.arguments) == ("Reasoning first.", call.name, call.arguments)
        assert parsed.action == call_to_action(call, COMMANDS)


@pytest.mark.parametrize(("source", "target"), [(XML, FC), (FC, XML), (TICKS, XML), (XML, TICKS), (TICKS, FC), (FC, TICKS)])
def test_answers_convert_between_formats_and_back_unchanged(source, target):
    for index, call in enumerate(CALLS):
        original = source.render(f"Step {index}: checking.", ToolCall(call.name, call.arguments, f"call_{index}"), COMMANDS)
        there = convert_output(original.content, original.tool_calls, source, target, COMMANDS, call_id=f"call_{index}")
        back = convert_output(there.content, there.tool_calls, target, source, COMMANDS, call_id=f"call_{index}")
        assert back == original


def test_an_action_containing_a_fence_gets_a_longer_fence():
    call = ToolCall("bash", {"command": "cat > README.md <<'EOF'\n```python\nprint(1)\n```\nEOF"})
    rendered = TICKS.render("Write docs.", call, COMMANDS)
    assert "\n````\n" in rendered.content
    assert TICKS.parse(rendered.content, None, COMMANDS).action == call.arguments["command"]


def test_random_values_survive_xml_native_and_the_command_line():
    """Values built from the characters that break naive formats: quotes, newlines, tags, fences, `$`."""
    rng = random.Random(7)
    alphabet = ["a", "Z", "0", " ", "\n", "\t", "'", '"', "\\", "$", "`", "<", ">", "/", "=", "</parameter>",
                "<parameter=path>", "</function>", "```", "-", "--new_str", "é", "{", "}", "#", ";", "*"]
    for _ in range(300):
        values = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(3)]
        call = ToolCall("str_replace_editor", {"command": "str_replace", "path": f"/{values[0]}", "old_str": values[1], "new_str": values[2]})
        assert action_to_call(call_to_action(call, COMMANDS), COMMANDS) == call
        for parser in (XML, FC, TICKS):
            rendered = parser.render("t", call, COMMANDS)
            assert parser.parse(rendered.content, rendered.tool_calls, COMMANDS).call.arguments == call.arguments


def test_a_history_converts_to_native_tool_calls_and_back():
    history = [
        {"role": "system", "content": "You are a helpful assistant.", "message_type": "system_prompt"},
        {"role": "user", "content": "Fix the bug.", "message_type": "observation"},
    ]
    for index, call in enumerate(CALLS[:5]):
        history.append({"role": "assistant", "content": XML.render(f"Step {index}.", call, COMMANDS).content,
                        "message_type": "action", "model_role": "student"})
        history.append({"role": "user", "content": f"OBSERVATION:\noutput {index}", "message_type": "observation"})
    native = convert_messages(history, XML, FC, COMMANDS)
    assert [m["role"] for m in native] == ["system", "user"] + ["assistant", "tool"] * 5
    for answer, observation in zip(native[2::2], native[3::2]):
        assert len(answer["tool_calls"]) == 1 and answer["model_role"] == "student"
        assert observation["tool_call_ids"] == [answer["tool_calls"][0]["id"]]
    assert len({m["tool_calls"][0]["id"] for m in native[2::2]}) == 5
    assert convert_messages(native, FC, XML, COMMANDS) == history


# ---- configuration ----------------------------------------------------------------------------------------------


def test_parse_function_is_chosen_by_type_in_yaml_and_rejects_unknown_keys():
    adapter = TypeAdapter(ParseFunctionConfig)
    assert isinstance(adapter.validate_python({"type": "xml_function_calling"}), XMLFunctionCallingParser)
    custom = adapter.validate_python({"type": "thought_action", "format_error_template": "Bad: {{error}}"})
    assert isinstance(custom, ThoughtActionParser) and custom.format_error_template == "Bad: {{error}}"
    with pytest.raises(ValidationError):
        adapter.validate_python({"type": "function_calling", "strict": True})
    with pytest.raises(ValidationError):
        adapter.validate_python({"type": "json"})
