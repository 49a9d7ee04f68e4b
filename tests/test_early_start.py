"""`sweagent run` starts its sandbox before the agent's modules load (`sweagent/run/early_start.py`), and the console
entry exits without freeing the interpreter (`cli.exit_without_teardown`): what a user sees is unchanged, in the
real sandbox and through the real command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import SUBMIT_XML, XML_TOOLS, xml


def write_config(tmp_path: Path, repo: Path, outputs: list[str], **extra: object) -> list[str]:
    """A replay config for `repo` and the `sweagent run` options that use it."""
    (tmp_path / "replay.yaml").write_text(yaml.safe_dump(outputs))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"agent": {
        "templates": {"system_template": "{{command_docs}}"}, "tools": XML_TOOLS,
        "model": {"type": "replay", "replay_path": str(tmp_path / "replay.yaml")}}, **extra}))
    return ["--config", str(tmp_path / "config.yaml"), "--repo_path", str(repo), "--problem_statement", "add() subtracts",
            "--output_dir", str(tmp_path / "out")]


def test_the_sandbox_starts_before_any_agent_module_loads(tmp_path: Path, repo: Path) -> None:
    argv = write_config(tmp_path, repo, [SUBMIT_XML])
    script = (
        "import sys\n"
        "from sweagent.run import early_start\n"
        f"with early_start.starting({argv!r}):\n"
        "    env = early_start._started\n"
        "    loaded = sorted(m for m in sys.modules if m.startswith(('sweagent.agent', 'jinja2', 'litellm')))\n"
        "    env.start()\n"
        "    print(loaded, env.communicate('pwd && ls').split())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] ['/testbed', 'calc.py']"


def test_the_short_switch_interval_lasts_while_any_background_start_runs(tmp_path: Path, repo: Path) -> None:
    """Fast switching (the lock changes hands every 0.5 ms while a start's many short system calls run): spans on
    several threads overlap, one may end on another thread, and the process's own interval comes back once the
    last one ends."""
    import threading

    from sweagent.utils.threads import FAST_SWITCH_INTERVAL_S, begin_fast_switching, end_fast_switching

    before = sys.getswitchinterval()
    entered, leave = threading.Barrier(3), threading.Event()

    def hold() -> None:
        begin_fast_switching()
        entered.wait()
        leave.wait()
        end_fast_switching()

    first, second = threading.Thread(target=hold), threading.Thread(target=hold)
    first.start(), second.start()
    entered.wait()
    assert sys.getswitchinterval() == FAST_SWITCH_INTERVAL_S
    begin_fast_switching()
    leave.set()
    first.join(), second.join()
    assert sys.getswitchinterval() == FAST_SWITCH_INTERVAL_S  # this thread's span still runs
    ender = threading.Thread(target=end_fast_switching)
    ender.start(), ender.join()
    assert sys.getswitchinterval() == before
    argv = write_config(tmp_path, repo, [SUBMIT_XML])
    script = (
        "import sys\n"
        "from sweagent.run import early_start\n"
        f"with early_start.starting({argv!r}):\n"
        "    during = sys.getswitchinterval()\n"
        "    early_start._started.start()\n"
        "    print(during, sys.getswitchinterval())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(FAST_SWITCH_INTERVAL_S), "0.005"]


def test_take_hands_over_only_the_environment_of_the_same_problem_and_config(tmp_path: Path, repo: Path) -> None:
    from sweagent.environment.problem import LocalRepoProblem
    from sweagent.environment.swe_env import EnvironmentConfig
    from sweagent.run import early_start

    argv = write_config(tmp_path, repo, [SUBMIT_XML])
    problem = LocalRepoProblem(repo, "add() subtracts")
    with early_start.starting(argv):
        started = early_start._started
        assert early_start.take(EnvironmentConfig(working_dir="/elsewhere"), problem) is None
        assert started._deployment is None  # the mismatched one was waited for and stopped, not left running
        assert early_start.take(EnvironmentConfig(), problem) is None  # taken (and closed) once

    with early_start.starting(argv):
        env = early_start.take(EnvironmentConfig(), LocalRepoProblem(repo, "add() subtracts"))
    try:  # a taken environment outlives the block: the rollout closes it
        assert env is not None
        env.start()  # waits for the background start
        assert env.communicate("cat calc.py").startswith("def add")
    finally:
        env.close()


def test_an_environment_nobody_takes_is_stopped_when_the_command_ends(tmp_path: Path, repo: Path) -> None:
    from sweagent.run import early_start

    with early_start.starting(write_config(tmp_path, repo, [SUBMIT_XML])):
        env = early_start._started
        env.start()
        process = env._deployment.runtime._process
    assert early_start._started is None and process.poll() is not None


def test_a_failed_background_start_reaches_the_rollout(tmp_path: Path, repo: Path) -> None:
    argv = write_config(tmp_path, repo, [xml("echo hi"), SUBMIT_XML], env={"post_startup_commands": ["false"]})
    result = subprocess.run([sys.executable, "-m", "sweagent", "run", *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "setup command failed (1): false" in result.stderr and "Traceback" not in result.stderr
    traj = yaml.safe_load((tmp_path / "out" / "calc" / "calc.traj").read_text())
    assert traj["info"]["exit_status"] == "exit_environment_error" and traj["trajectory"] == []


@pytest.mark.parametrize("bad", ["agent", "env"])
def test_a_bad_config_is_reported_once_with_nothing_started(tmp_path: Path, repo: Path, bad: str) -> None:
    argv = write_config(tmp_path, repo, [SUBMIT_XML])
    argv += ["--agent.model.temperatur", "1"] if bad == "agent" else ["--env.working_dir", "relative"]
    result = subprocess.run([sys.executable, "-m", "sweagent", "run", *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweagent run: command line: key '"), result.stderr
    assert not (tmp_path / "out" / "calc").exists()


def test_the_console_entry_exits_with_the_run_s_status_and_its_output_flushed(tmp_path: Path, repo: Path) -> None:
    argv = write_config(tmp_path, repo, [xml("echo hi > greeting.txt"), SUBMIT_XML])
    sweagent = Path(sys.executable).with_name("sweagent")
    result = subprocess.run([str(sweagent), "run", *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("calc: submitted after 2 steps -> " + str(tmp_path / "out" / "calc" / "calc.traj"))
    assert "+hi" in (tmp_path / "out" / "calc" / "calc.patch").read_text()
    info_log = (tmp_path / "out" / "calc" / "calc.info.log").read_text()
    assert "step 1" in info_log  # the log file was flushed and closed by the exit
