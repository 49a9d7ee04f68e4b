"""SWE-agent's standard tool bundles (OEC's own implementations) in the real sandbox, each command driven by a replay.

The commands are typed as SWE-agent users and its demonstrations type them (thought_action: a fenced block), and
the editors are also called natively (function_calling), whose command line follows OEC's rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sweagent.environment.problem import LocalRepoProblem
from sweagent.run.config_loading import build_config
from sweagent.run.run_single import RunSingleConfig, dump_config, run_one

CALC = "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
LONG = "import os\n\n\nclass Box:\n    def size(self):\n" + "".join(f"        x{i} = {i}\n" for i in range(8)) + "        return x0\n\n\ndef short():\n    return os.sep\n"
STATE_TEMPLATE = "{{observation}}\n(Open file: {{open_file}})\n(Current directory: {{working_dir}})"


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "calc"
    (path / "pkg").mkdir(parents=True)
    (path / "calc.py").write_text(CALC)
    (path / "pkg" / "box.py").write_text(LONG)
    (path / "pkg" / "__init__.py").write_text("")
    return path


def block(command: str) -> str:
    return f"Next I run this.\n```\n{command}\n```"


def call(name: str, **arguments) -> dict:
    return {"content": f"Calling {name}.", "tool_calls": [
        {"id": f"call_{name}_{len(arguments)}", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}]}


def run(tmp_path: Path, repo: Path, bundles: list[str], outputs: list, *, parse: str = "thought_action",
        templates: dict | None = None, env_variables: dict | None = None, registry_variables: dict | None = None,
        registry: bool = True):
    replay = tmp_path / "replay.yaml"
    replay.write_text(yaml.safe_dump(outputs))
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump({
        "agent": {
            "templates": {"system_template": "{{command_docs}}", **(templates or {})},
            "tools": {"bundles": [{"path": f"tools/{name}"} for name in [*(["registry"] if registry else []), *bundles, "submit"]],
                      "parse_function": {"type": parse}, "env_variables": env_variables or {},
                      "registry_variables": registry_variables or {}},
            "model": {"type": "replay", "replay_path": str(replay)},
        },
        "output_dir": str(tmp_path / "out"),
    }))
    config = build_config(RunSingleConfig, [config_file], [])
    problem = LocalRepoProblem(repo, "add() subtracts", "calc")
    trajectory = run_one(config.agent, config.env, problem, output_dir=config.output_dir, traj_id="calc",
                         replay_config=dump_config(config))
    return trajectory, [step.observation for step in trajectory.trajectory]


def test_windowed_and_search_commands_keep_the_open_file_and_window_between_actions(tmp_path, repo):
    trajectory, obs = run(tmp_path, repo, ["windowed", "search"], [
        block("open calc.py"), block("goto 8"), block("scroll_up"), block("scroll_down"), block("open pkg/box.py 9"),
        block("search_file return"), block("search_file mul calc.py"), block("find_file '*.py'"), block("find_file box.py pkg"),
        block("search_dir 'return a'"), block("search_dir nowhere_to_be_found pkg"), block("create notes/todo.py"), block("submit"),
    ], templates={"next_step_template": STATE_TEMPLATE}, env_variables={"WINDOW": 5, "OVERLAP": 1})
    assert trajectory.info.exit_status == "submitted"
    assert obs[0].splitlines()[:3] == ["[File: /testbed/calc.py (10 lines total)]", "1:def add(a, b):", "2:    return a - b"]
    assert obs[0].splitlines()[-1] == "(5 more lines below)"
    # goto 8 puts line 8 a sixth of the window below the top, but the window stops short of the end (SWE-agent's rule)
    assert obs[1].splitlines()[1:3] == ["(4 more lines above)", "5:def sub(a, b):"]
    assert obs[2].splitlines()[1] == "1:def add(a, b):"  # up by the window minus the overlap, clamped at the top
    assert obs[3] == obs[1]
    assert "[File: /testbed/pkg/box.py (18 lines total)]" in obs[4] and "9:        x3 = 3" in obs[4]
    assert obs[5].startswith('Found 2 matches for "return" in /testbed/pkg/box.py:') and "Line 14:        return x0" in obs[5]
    assert "Line 9:def mul(a, b):" in obs[6]
    assert obs[7].startswith('Found 3 matches for "*.py" in /testbed:') and "/testbed/pkg/__init__.py" in obs[7]
    assert obs[8] == 'Found 1 matches for "box.py" in /testbed/pkg:\n/testbed/pkg/box.py'
    assert '/testbed/calc.py (3 matches)' in obs[9] and obs[9].endswith('End of matches for "return a" in /testbed')
    assert obs[10] == 'No matches found for "nowhere_to_be_found" in /testbed/pkg'
    assert obs[11].startswith("[File: /testbed/notes/todo.py (0 lines total)]")
    # the state command reports the open file to the next message, as SWE-agent's 0.7 templates expect
    user_messages = [m.text for m in trajectory.history if m.role == "user"]
    assert "(Open file: /testbed/calc.py)\n(Current directory: /testbed)" in user_messages[1]
    assert "(Open file: /testbed/notes/todo.py)" in user_messages[12]
    assert trajectory.trajectory[4].state["open_file"] == "/testbed/pkg/box.py"
    assert "moves the window down 5 lines" in trajectory.history[0].text  # {WINDOW} in docstrings


def test_linting_edit_keeps_good_edits_and_rejects_those_that_break_the_file(tmp_path, repo):
    trajectory, obs = run(tmp_path, repo, ["windowed", "windowed_edit_linting"], [
        block("open calc.py"),
        block("edit 2:2\n    return a + b\nend_of_edit"),
        block("edit 5:6\ndef sub(a, b)\n    return a - b\nend_of_edit"),
        block("edit 10:10\n    return a * c\nend_of_edit"),
        block("edit 9:10\ndef mul(a, b):\n    product = a * b\n    return product\nend_of_edit"),
        block("submit"),
    ])
    assert obs[1].startswith("File updated.") and "2:    return a + b" in obs[1]
    assert "Your edit was NOT applied" in obs[2] and "- E999 SyntaxError" in obs[2]
    assert "- F821 undefined name 'c'" in obs[3]
    assert "11:    return product" in obs[4]
    patch = trajectory.info.submission
    assert "+    return a + b" in patch and "+    product = a * b" in patch
    assert "def sub(a, b)\n" not in patch and "a * c" not in patch


def test_linting_edit_as_a_native_function_call(tmp_path, repo):
    trajectory, obs = run(tmp_path, repo, ["windowed", "windowed_edit_linting"], [
        call("open", path="/testbed/calc.py"), call("edit", start_line=2, end_line=2, replacement_text="    return a + b"),
        call("submit"),
    ], parse="function_calling")
    assert trajectory.trajectory[1].action == "edit 2 2 '    return a + b'"
    assert obs[1].startswith("File updated.")
    assert "+    return a + b" in trajectory.info.submission


def test_replace_editor_searches_the_window_and_insert_adds_lines(tmp_path, repo):
    trajectory, obs = run(tmp_path, repo, ["windowed", "windowed_edit_replace"], [
        block("open calc.py"),
        block("edit 'a - b' 'a + b'"),  # two occurrences in the shown lines
        block("goto 1"),
        block("edit 'def add(a, b):\n    return a - b' 'def add(a, b):\n    return a + b'"),
        block("edit 'nothing like this' 'x'"),
        block("edit 'a * b' 'b * a' True"),
        block("insert 'def div(a, b):\n    return a / b'"),
        block("insert '    broken(' 1"),
        block("submit"),
    ], env_variables={"WINDOW": 20})
    assert "occurs more than once in the shown lines" in obs[1]
    assert obs[3].startswith("Text replaced.") and "2:    return a + b" in obs[3]
    assert "is not in the shown lines, nor anywhere in the file" in obs[4]
    assert obs[5].startswith("Replaced 1 occurrences.")
    assert "11:def div(a, b):" in obs[6]
    assert "Your edit was NOT applied" in obs[7]
    patch = trajectory.info.submission
    assert "+    return a + b" in patch and "+    return b * a" in patch and "+def div(a, b):" in patch and "broken(" not in patch


def test_rewrite_editor_replaces_the_shown_lines(tmp_path, repo):
    trajectory, obs = run(tmp_path, repo, ["windowed", "windowed_edit_rewrite"], [
        block("open calc.py"),
        block('edit "def add(a, b):\n    return a + b"'),
        block('edit "def add(a, b)"'),
        block("submit"),
    ], env_variables={"WINDOW": 2})
    assert obs[1] == "Edit successful."
    assert "Your edit was NOT applied" in obs[2]
    assert (trajectory.info.submission or "").count("+    return a + b") == 1


def test_filemap_diff_state_multilingual_setup_and_forfeit(tmp_path, repo):
    diff_template = "{% if diff %}<diff>\n{{diff}}\n</diff>\n{% endif %}{{observation}}"
    trajectory, obs = run(tmp_path, repo, ["filemap", "diff_state", "multilingual_setup", "forfeit"], [
        block("filemap pkg/box.py"),
        block("sed -i 's/a - b/a + b/' calc.py && echo edited"),
        block("python -c 'print(6 * 7)'"),
        block("exit_forfeit"),
    ], templates={"next_step_template": diff_template, "next_step_no_output_template": diff_template})
    assert obs[0].splitlines()[:6] == ["     1 import os", "     2 ", "     3 ", "     4 class Box:",
                                       "     5     def size(self):", "     6 ... eliding lines 6-14 ..."]
    assert obs[0].splitlines()[-2:] == ["    17 def short():", "    18     return os.sep"]  # short bodies stay
    user_messages = [m.text for m in trajectory.history if m.role == "user"]
    assert "<diff>" not in user_messages[1]
    assert "<diff>" in user_messages[2] and "+    return a + b" in user_messages[2]
    assert obs[2] == "42"  # multilingual_setup: `python` exists in the session
    assert trajectory.info.exit_status == "exit_forfeit"
    assert "+    return a + b" in trajectory.info.submission  # the diff is still recorded


def test_the_editor_shows_a_large_python_file_as_an_outline_with_use_filemap(tmp_path, repo):
    big = "".join(f"def f{i}(x):\n" + "".join(f"    x += {j}\n" for j in range(6)) + "    return x\n\n\n" for i in range(300))
    (repo / "big.py").write_text(big)
    view = call("str_replace_editor", command="view", path="/testbed/big.py")
    ranged = call("str_replace_editor", command="view", path="/testbed/big.py", view_range=[1, 3])
    _, obs = run(tmp_path, repo, ["edit_anthropic"], [view, ranged, call("submit")], parse="function_calling",
                 registry_variables={"USE_FILEMAP": "true"})
    assert obs[0].startswith("<NOTE>This file is too large") and "     1 def f0(x):\n     2 ... eliding lines 2-8 ..." in obs[0]
    assert obs[1].splitlines()[1:] == ["     1\tdef f0(x):", "     2\t    x += 0", "     3\t    x += 1"]


def test_the_registry_is_installed_when_a_config_leaves_it_out(tmp_path, repo):
    """SWE-agent's 07_thought_action configs list windowed without the registry it keeps its state in."""
    trajectory, obs = run(tmp_path, repo, ["windowed", "windowed_edit_linting"], [
        block("open calc.py"), block("edit 2:2\n    return a + b\nend_of_edit"), block("submit")], registry=False)
    assert obs[0].startswith("[File: /testbed/calc.py") and obs[1].startswith("File updated.")
    assert "+    return a + b" in trajectory.info.submission


@pytest.mark.slow
def test_lint_on_edit_works_alike_in_the_sandbox_and_in_a_container_without_touching_the_task_environment(tmp_path):
    """A container gets OEC's copy of flake8 for the image's python3 (sweagent/tools/tool_packages.py)."""
    import subprocess

    from sweagent.environment.container.deployment import ContainerError, server_binds
    from sweagent.environment.container.images import ImageBuilder
    from sweagent.instance import load_instances
    from sweagent.run.run_batch import RunBatchConfig, run_batch
    from sweagent.tools.bundles import REPO_ROOT
    from sweagent.trajectory import load_trajectory, traj_path

    started = subprocess.run([str(REPO_ROOT / "scripts" / "docker_images.sh"), "engine"], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.skip(f"no docker engine can start here: {(started.stderr or started.stdout).strip().splitlines()[-1:]}")
    try:
        server_binds()
    except ContainerError as exc:
        pytest.skip(f"docker: {exc}")
    instances = REPO_ROOT / "config/demo/instances.json"
    instance = load_instances(instances)[0]
    ImageBuilder().build([instance])
    outputs = [block("create /testbed/lint_probe.py"), block("edit 1:1\nx = (\nend_of_edit"), block("edit 1:1\nx = 1\nend_of_edit"),
               block("python -c 'import flake8' 2>&1 | tail -1"), block("submit")]
    observations = {}
    for name in ("sandbox", "docker"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "replay.yaml").write_text(yaml.safe_dump(outputs))
        (folder / "config.yaml").write_text(yaml.safe_dump({
            "agent": {"tools": {"bundles": [{"path": f"tools/{b}"} for b in ("registry", "windowed", "windowed_edit_linting", "submit")],
                                "parse_function": {"type": "thought_action"}},
                      "model": {"type": "replay", "replay_path": str(folder / "replay.yaml")}},
            "env": {"deployment": {"type": name}}, "output_dir": str(folder / "run"),
            "instances": {"path": str(instances), "filter": f"^{instance.instance_id}$"}}))
        assert run_batch(build_config(RunBatchConfig, [folder / "config.yaml"], [])) == {"submitted": 1}
        observations[name] = [s.observation for s in load_trajectory(traj_path(folder / "run", instance.instance_id)).trajectory]
    assert observations["docker"][:3] == observations["sandbox"][:3]
    assert "- E999 SyntaxError: '(' was never closed" in observations["docker"][1]
    assert observations["docker"][2].startswith("File updated.")
    assert all("No module named 'flake8'" in obs[3] for obs in observations.values())  # the task's Python has none
