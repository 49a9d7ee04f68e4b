"""The shell scripts as a user on a fresh machine runs them: a clean environment (`env -i`), any working directory.

Fast tests: `--help`, one-line usage errors (exit 2) for an option without its value and for an unknown option.
Slow tests: the local model servers a script starts are stopped on every way out (an error, Ctrl-C, SIGTERM, also
while a server is still starting), and die with a starter that was killed with SIGKILL; Ctrl-C stops a shell loop
around a sweagent command. Each starts the script as a terminal would (signals at their defaults) and waits for a
real condition (a process or a state file appears or goes), never for a fixed time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sweagent.local_models import MODELS, ensure_weights, server_status, stop_server
from sweagent.local_models.server import SERVE_MODULE, _pid_start_ticks
from sweagent.utils.cache import cache_root

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = [
    "generate_oec.sh", "test_oec.sh", "eval_swesmith.sh", "convert_to_sft.sh", "analyze_covariate_shift.sh",
    "categorize_failures.sh", "scripts/run_pipeline.sh", "scripts/setup.sh", "scripts/test.sh",
]
STAGES = ["eval_swesmith.sh", "convert_to_sft.sh", "analyze_covariate_shift.sh", "categorize_failures.sh", "train_sft.sh"]
# Every option the shell itself parses; the Python CLIs' options all go through argparse, one of each suffices.
MISSING_VALUE = [
    *[("generate_oec.sh", option) for option in (
        "--config", "--instances", "--split", "--output_dir", "--num_workers", "--rollouts_per_instance", "--slice",
        "--filter", "--seed", "--executor", "--ray_address", "--student_host", "--student_port", "--local_models",
    )],
    ("test_oec.sh", "--config"),
    *[("scripts/run_pipeline.sh", option) for option in (
        "--output", "--instances", "--rollouts", "--config", "--instances_file", "--student_calls", "--judge_limit",
        "--workers",
    )],
    ("scripts/test.sh", "-k"),
    ("scripts/test.sh", "-m"),
    ("eval_swesmith.sh", "--workers"),
    ("convert_to_sft.sh", "--output"),
    ("analyze_covariate_shift.sh", "--output-dir"),
    ("categorize_failures.sh", "--run_dir"),
]
# What each script needs besides the unknown option, so that the error is about that option.
REQUIRED = {
    "eval_swesmith.sh": ["runs/x"],
    "convert_to_sft.sh": ["--runs", "runs/x", "--output", "sft.jsonl"],
    "analyze_covariate_shift.sh": ["--group", "a=runs/a", "--group", "b=runs/b", "--reference", "a", "--output-dir", "o"],
    "categorize_failures.sh": ["--run_dir", "runs/x"],
}


def _clean_env(**extra: str) -> dict[str, str]:
    return {"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin", **extra}


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / script), *args], cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=600,
    )


def _prog(script: str) -> str:
    """The name usage errors start with: test_oec.sh execs generate_oec.sh."""
    return "generate_oec.sh" if script == "test_oec.sh" else Path(script).name


def _assert_usage_error(result: subprocess.CompletedProcess[str], prog: str, *named: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "unbound variable" not in result.stderr
    line = result.stderr.strip()
    assert "\n" not in line, result.stderr
    assert line.startswith(f"{prog}: "), line
    for text in named:
        assert text in line


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_works_from_a_clean_environment(script: str, tmp_path: Path) -> None:
    result = _run(script, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
    assert result.stderr == ""


@pytest.mark.parametrize(("script", "option"), MISSING_VALUE)
def test_an_option_without_its_value_is_a_one_line_usage_error(script: str, option: str, tmp_path: Path) -> None:
    _assert_usage_error(_run(script, option, cwd=tmp_path), _prog(script), option)


def test_an_option_followed_by_another_option_has_no_value(tmp_path: Path) -> None:
    _assert_usage_error(_run("generate_oec.sh", "--output_dir", "--slice", ":1", cwd=tmp_path), "generate_oec.sh",
                        "option --output_dir needs a value")


@pytest.mark.parametrize("script", SCRIPTS)
def test_an_unknown_option_is_a_one_line_usage_error(script: str, tmp_path: Path) -> None:
    result = _run(script, *REQUIRED.get(script, []), "--no-such-option", "1", cwd=tmp_path)
    if script == "scripts/test.sh":  # its options are pytest's, and so is the usage error of one it does not document
        assert result.returncode == 4 and "--no-such-option" in result.stderr
        return
    _assert_usage_error(result, _prog(script), "no-such-option")


@pytest.mark.parametrize(("script", "old", "new"), [
    ("eval_swesmith.sh", "--workers", "--num_workers"),
    ("analyze_covariate_shift.sh", "--output-dir", "--output_dir"),
])
def test_old_option_spellings_are_the_same_options_as_the_snake_case_ones(script: str, old: str, new: str, tmp_path: Path) -> None:
    help_text = _run(script, "--help", cwd=tmp_path).stdout
    assert re.search(rf"{new}( [A-Z_]+)?, {old}", help_text), help_text
    _assert_usage_error(_run(script, old, cwd=tmp_path), _prog(script), old)


def test_the_stage_scripts_are_one_shim(tmp_path: Path) -> None:
    """Every stage script is the same three lines calling `oec_stage MODULE` (scripts/cli.sh, which runs setup.sh)."""
    bodies = {script: [line for line in (REPO / script).read_text().splitlines() if not line.startswith("#")]
              for script in STAGES}
    for body in bodies.values():
        assert body[:2] == ['set -euo pipefail', 'source "$(dirname "${BASH_SOURCE[0]}")/scripts/cli.sh"']
        assert len(body) == 3 and body[2].startswith("oec_stage ") and body[2].endswith(' "$@"')


def test_help_of_every_script_needs_no_heavy_library(tmp_path: Path) -> None:
    """`--help` answers without importing swebench, litellm, torch or transformers (they take seconds)."""
    heavy = ("swebench", "litellm", "torch", "transformers")
    for module, args in [("oec.sft.cli", ["--help"]), ("oec.evaluation", ["--help"]), ("covariate_shift_analysis", ["--help"]),
                         ("failure_categorization", ["--help"]), ("oec.training.cli", ["--help"])]:
        probe = f"import runpy, sys; sys.argv = ['x', *{args!r}]\ntry: runpy.run_module({module!r}, run_name='__main__')\n" \
                f"except SystemExit: pass\nprint(sorted(m for m in {heavy!r} if m in sys.modules))"
        result = subprocess.run([str(REPO / ".venv/bin/python"), "-c", probe], capture_output=True, text=True, cwd=tmp_path)
        assert result.stdout.strip().splitlines()[-1] == "[]", (module, result.stdout[-300:], result.stderr[-300:])


# ---- local model servers: stopped on every way out ---------------------------------------------------------------


@pytest.fixture(scope="module")
def oec_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache of our own for the server state, sharing everything else (weights, sdists, venvs) with the real one:
    the servers started here are then the scripts' alone, whatever else runs on the machine."""
    for spec in MODELS.values():
        ensure_weights(spec)
    real = cache_root()
    cache = tmp_path_factory.mktemp("oec_cache")
    for entry in real.iterdir():
        if entry.name != "servers":
            (cache / entry.name).symlink_to(entry)
    return cache


def _our_servers(state_dir: Path) -> list[int]:
    """PIDs of server processes for `state_dir` (their ready file lives there), recorded in a state file or not."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if SERVE_MODULE.encode() in argv and any(arg.startswith(str(state_dir).encode()) for arg in argv):
            pids.append(int(proc.name))
    return pids


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _wait_for(condition: Callable[[], object], what: str, script: subprocess.Popen | None = None,
              timeout: float = 600.0) -> object:
    """Poll `condition` until it holds; fail if the deadline passes or the script ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if script is not None and script.poll() is not None:
            pytest.fail(f"the script exited ({script.returncode}) before {what}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


class Starter:
    """One run of a script that starts local models, as a terminal runs a foreground job: in its own process group
    (so Ctrl-C can be sent to it) and with every signal at its default disposition. A suite started in the background
    (`scripts/test.sh &`) ignores SIGINT and SIGQUIT and would pass that on; a script that starts with SIGINT ignored
    rightly keeps ignoring it (bash cannot trap it), so Ctrl-C would not reach it at all."""

    def __init__(self, script: str, args: list[str], cache: Path, cwd: Path) -> None:
        self.state_dir = cache / "servers"
        self.log = cwd / "script.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                ["env", "--default-signal", "bash", str(REPO / script), *args], cwd=cwd,
                env=_clean_env(OEC_CACHE=str(cache)),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self) -> int:
        return self.process.wait(timeout=600)

    def states(self) -> dict[str, str]:
        return {name: server_status(name, state_dir=self.state_dir).state for name in MODELS}

    def recorded_pids(self) -> list[int]:
        return [status.info.pid for name in MODELS if (status := server_status(name, state_dir=self.state_dir)).info]

    def run_batch(self) -> int:
        """The PID of the script's `sweagent run-batch` child, once it runs."""
        found = _wait_for(
            lambda: [pid for pid in _children(self.process.pid) if b"run-batch" in _cmdline(pid)],
            "run-batch started", self.process,
        )
        return found[0]

    def cleanup(self) -> None:
        """Whatever a failed test leaves behind: the script's group, and servers for our state dir."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for name in MODELS:
            stop_server(name, state_dir=self.state_dir)
        for pid in _our_servers(self.state_dir):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def starter(oec_cache: Path, tmp_path: Path) -> Iterator[Callable[..., Starter]]:
    started: list[Starter] = []

    def start(script: str, *args: str) -> Starter:
        started.append(Starter(script, list(args), oec_cache, tmp_path))
        return started[-1]

    yield start
    for run in started:
        run.cleanup()


def _assert_all_stopped(run: Starter) -> None:
    """Right after the script has ended: its exit cleanup waits until the servers are gone."""
    assert _our_servers(run.state_dir) == [], run.output()
    assert run.states() == {"student": "stopped", "expert": "stopped"}, run.output()
    assert "unbound variable" not in run.output()


@pytest.mark.slow
def test_generate_oec_stops_its_servers_when_run_batch_fails(starter) -> None:
    # a config that loads (so the servers start) and a batch that then fails: its instance file is missing
    run = starter("generate_oec.sh", "--slice", ":1", "--output_dir", "out", "--", "--instances.path", "no_such_tasks.json")
    assert run.wait() == 2
    assert "no_such_tasks.json" in run.output()
    assert "student  started" in run.output() and "expert   started" in run.output()
    _assert_all_stopped(run)


def test_a_config_error_stops_generate_oec_before_any_server_starts(tmp_path: Path) -> None:
    result = _run("generate_oec.sh", "--local_models", "auto", "--", "--agent.no_such_key", "1", cwd=tmp_path)
    assert result.returncode == 2 and "key 'agent.no_such_key': unknown key" in result.stderr
    assert "starting local model servers" not in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("ctrl_c", [True, False], ids=["ctrl_c", "sigterm"])
def test_generate_oec_stops_its_servers_and_run_batch_on_a_signal(starter, ctrl_c: bool) -> None:
    run = starter("generate_oec.sh", "--slice", ":1", "--output_dir", "out")
    child = run.run_batch()
    if ctrl_c:  # the terminal signals the whole foreground process group
        os.killpg(run.process.pid, signal.SIGINT)
    else:
        run.process.send_signal(signal.SIGTERM)
    assert run.wait() == -(signal.SIGINT if ctrl_c else signal.SIGTERM)
    assert _pid_start_ticks(child) is None
    _assert_all_stopped(run)


@pytest.mark.slow
def test_ctrl_c_stops_a_shell_loop_around_a_sweagent_command(starter, tmp_path: Path) -> None:
    """A shell goes on after a child that caught Ctrl-C and exited, whatever its status: the CLI reports the
    interrupt on one line and then ends killed by SIGINT, so the loop (and the shell) stops there."""
    loop = tmp_path / "loop.sh"
    loop.write_text(f'for attempt in 1 2; do "{REPO}/.venv/bin/sweagent" serve-local start student; '
                    'echo "attempt $attempt ended"; done\n')
    run = starter(str(loop))
    _wait_for(lambda: _our_servers(run.state_dir), "the student server", run.process)  # loading its model
    os.killpg(run.process.pid, signal.SIGINT)
    assert run.wait() == -signal.SIGINT, run.output()
    assert run.output().strip().splitlines()[-1] == "sweagent serve-local: interrupted", run.output()
    assert "Traceback" not in run.output()


@pytest.mark.slow
def test_generate_oec_stops_a_server_that_is_still_starting_on_sigterm(starter) -> None:
    run = starter("generate_oec.sh", "--slice", ":1", "--output_dir", "out")
    # The student is up and recorded, the expert's process exists: with luck it is still loading its model.
    _wait_for(lambda: run.states()["student"] == "running", "the student server", run.process)
    _wait_for(lambda: any(b"expert" in _cmdline(pid) for pid in _our_servers(run.state_dir)), "the expert server",
              run.process)
    run.process.send_signal(signal.SIGTERM)
    assert run.wait() == -signal.SIGTERM
    _assert_all_stopped(run)


@pytest.mark.slow
def test_servers_and_run_batch_do_not_outlive_a_killed_generate_oec(starter) -> None:
    run = starter("generate_oec.sh", "--slice", ":1", "--output_dir", "out")
    child = run.run_batch()
    servers = run.recorded_pids()
    assert len(servers) == 2
    run.process.kill()  # no trap runs: the servers watch their owner, run-batch has a parent-death signal
    assert run.wait() == -signal.SIGKILL
    _wait_for(lambda: all(_pid_start_ticks(pid) is None for pid in [*servers, child]), "servers and run-batch gone")
    assert _our_servers(run.state_dir) == []
    assert run.states() == {"student": "dead", "expert": "dead"}


@pytest.mark.slow
def test_run_pipeline_stops_its_server_when_a_stage_fails(starter) -> None:
    run = starter("scripts/run_pipeline.sh", "--judge_limit", "0", "--instances_file", "missing.json", "--output", "out")
    assert run.wait() != 0
    assert "student  started" in run.output()
    _assert_all_stopped(run)


@pytest.mark.slow
def test_categorize_failures_stops_the_judge_it_started(starter, tmp_path: Path) -> None:
    (tmp_path / "empty_run").mkdir()
    run = starter("categorize_failures.sh", "--run_dir", "empty_run", "--output_dir", "judged")
    assert run.wait() == 0, run.output()
    assert "0 failed trajectories selected" in run.output()
    assert (run.state_dir / "expert.log").exists()  # the judge's server was started here, for this script
    _assert_all_stopped(run)


@pytest.mark.parametrize(("configs", "used"), [
    (["config/local_demo.yaml"], "student expert"),
    (["config/local_oracle_demo.yaml"], "student"),
    (["config/local_paper_setup.yaml"], "student expert"),
    (["config/local_oracle_demo.yaml", "config/schemes/scripted_student.yaml"], ""),
    (["config/qwen32b_switch_claude_python_tools.yaml"], ""),
])
def test_the_local_servers_a_script_starts_are_asked_of_the_loaded_config(configs: list[str], used: str, tmp_path: Path) -> None:
    options = [part for config in configs for part in ("--config", str(REPO / config))]
    result = subprocess.run([str(REPO / ".venv/bin/sweagent"), "serve-local", "used", *options], cwd=tmp_path,
                            env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout.strip()) == (0, used), result.stderr
    moved = subprocess.run([str(REPO / ".venv/bin/sweagent"), "serve-local", "used", *options[:2]], cwd=tmp_path,
                           env=_clean_env(OEC_STUDENT_API_BASE="http://10.1.2.3:9000/v1"), capture_output=True, text=True, timeout=120)
    assert "student" in moved.stdout.split() or "student" not in used.split()  # a student server moved elsewhere is still the student's
