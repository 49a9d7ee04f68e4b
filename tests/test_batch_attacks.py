"""The batch runner under failure and misuse: infrastructure retries, one writer per output dir, bad input as one
line, scratch space a `kill -9` leaves behind, and an instance's own sdist pin. Real sandbox, replay models."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sweagent.environment.task_repos.profiles import get_profile
from sweagent.environment.task_repos.source_cache import fetch_sdist, pristine_tree
from sweagent.environment.task_repos.workspace import WorkspaceError, build_workspace
from sweagent.instance import load_instances
from sweagent.run import run_batch as run_batch_module
from sweagent.run import run_single
from sweagent.run.config_loading import ConfigError, build_config
from sweagent.run.run_batch import RunBatchConfig, output_dir_lock, run_batch
from sweagent.run.run_single import BATCH_ONLY_KEYS, RunSingleConfig
from sweagent.trajectory import load_trajectory, traj_path
from sweagent.utils.scratch import PREFIX, process_scratch_dir, remove_stale_scratch_dirs
from conftest import XML_TOOLS

REPO = Path(__file__).resolve().parents[1]
INSTANCES = REPO / "config/demo/instances.json"
SUBMIT = ["<function=bash><parameter=command>echo fix >> NOTES.txt</parameter></function>", "<function=submit></function>"]
DEAD_SERVER = {"type": "litellm", "name": "openai/student", "api_base": "http://127.0.0.1:9/v1", "api_key": "unused",
               "retry": {"retries": 0, "min_wait": 0.1, "max_wait": 0.1}, "timeout": 5}


def ids(n: int) -> list[str]:
    return [instance.instance_id for instance in load_instances(INSTANCES)[:n]]


def write_config(tmp_path: Path, outputs: list | None = None, *, model: dict | None = None, name: str = "batch.yaml",
                 **top: object) -> Path:
    """A run-batch config over the first demo instances, with a replay model (or `model`) and `top` keys."""
    replay = tmp_path / f"{name}.replay.yaml"
    replay.write_text(yaml.safe_dump(outputs if outputs is not None else SUBMIT))
    data = {
        "agent": {"templates": {"system_template": "{{command_docs}}"},
                  "tools": XML_TOOLS,
                  "model": model or {"type": "replay", "replay_path": str(replay), "name": "replay"}},
        "instances": {"path": str(INSTANCES), "slice": ":2"},
        "output_dir": str(tmp_path / "run"),
        **top,
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def sweagent(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweagent", *args], capture_output=True, text=True, timeout=300, **kwargs)


def one_line_error(stderr: str) -> str:
    """The command's error: exactly one line, no traceback."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("sweagent ")]
    assert len(lines) == 1, stderr
    return lines[0]


# ---- 1. infrastructure failures are retried, model failures recorded ------------------------------------------------


@pytest.mark.slow
def test_a_dead_model_server_leaves_rollouts_unfinished_with_attempts_recorded_and_a_rerun_finishes_them(tmp_path):
    dead = write_config(tmp_path, model=DEAD_SERVER, name="dead.yaml", abort_after_identical_failures=0)
    counts = run_batch(build_config(RunBatchConfig, [dead], []))
    assert counts == {"infra_failed": 2}
    run_dir = tmp_path / "run"
    for iid in ids(2):
        trajectory = load_trajectory(traj_path(run_dir, iid))
        assert trajectory.info.exit_status == "exit_error" and trajectory.info.exit_cause == "ModelUnavailableError"
        assert [a["exit_status"] for a in trajectory.info.earlier_attempts] == ["exit_error"]  # 2 attempts this run
        assert not traj_path(run_dir, iid).with_suffix(".pred").exists()  # not finished
    assert json.loads((run_dir / "preds.json").read_text()) == {}
    assert yaml.safe_load((run_dir / "run_batch_exit_statuses.yaml").read_text()) == {"instances_by_exit_status": {}}

    healthy = write_config(tmp_path, name="healthy.yaml")
    counts = run_batch(build_config(RunBatchConfig, [healthy], []))
    assert counts == {"submitted": 2}
    for iid in ids(2):
        trajectory = load_trajectory(traj_path(run_dir, iid))
        assert trajectory.info.exit_status == "submitted"
        assert len(trajectory.info.earlier_attempts) == 2  # both attempts of the first run are on record
    assert sorted(json.loads((run_dir / "preds.json").read_text())) == sorted(ids(2))


@pytest.mark.slow
def test_model_failures_are_recorded_once_and_not_retried(tmp_path):
    malformed = ["no tool call here"] * 10  # every answer is a format error: exit_format
    config_path = write_config(tmp_path, malformed, retry_infra_failures=3)
    counts = run_batch(build_config(RunBatchConfig, [config_path], []))
    assert counts == {"exit_format": 2}
    for iid in ids(2):
        trajectory = load_trajectory(traj_path(tmp_path / "run", iid))
        assert getattr(trajectory.info, "earlier_attempts", None) is None
        assert traj_path(tmp_path / "run", iid).with_suffix(".pred").is_file()
    assert sum(run_batch(build_config(RunBatchConfig, [config_path], [])).values()) == 0  # finished: skipped


@pytest.mark.slow
def test_an_environment_setting_that_fails_everywhere_stops_the_batch_and_marks_nothing_finished(tmp_path, capsys):
    bad = write_config(tmp_path, instances={"path": str(INSTANCES), "slice": ":4"},
                       env={"deployment": {"type": "sandbox", "ro_binds": ["/no/such/dir"]}})
    assert run_batch_module.main(["--config", str(bad)]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert "the first 3 rollouts all failed with the same error" in error and "/no/such/dir" in error
    run_dir = tmp_path / "run"
    assert not list(run_dir.glob("*/*.pred"))
    assert len(list(run_dir.glob("*/*.traj"))) >= 3

    fixed = write_config(tmp_path, instances={"path": str(INSTANCES), "slice": ":4"}, name="fixed.yaml")
    assert run_batch(build_config(RunBatchConfig, [fixed], [])) == {"submitted": 4}


# ---- 2. one writer per output dir; one id once ---------------------------------------------------------------------


def test_a_second_run_batch_on_a_held_output_dir_stops_with_the_holders_pid(tmp_path):
    config_path = write_config(tmp_path)
    (tmp_path / "run").mkdir()
    with output_dir_lock(tmp_path / "run"):
        result = sweagent("run-batch", "--config", str(config_path))
    assert result.returncode == 2
    error = one_line_error(result.stderr)
    assert str(tmp_path / "run") in error and f"pid {os.getpid()}" in error
    assert not list((tmp_path / "run").glob("*/*.traj"))


def test_the_lock_ends_with_its_process_even_after_kill_9(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from sweagent.run.run_batch import output_dir_lock\n"
         "with output_dir_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(600)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"another run-batch \\(pid {holder.pid} on "):
            with output_dir_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with output_dir_lock(tmp_path):  # the kernel dropped the dead holder's lock
        assert (tmp_path / ".run_batch.lock").read_text().startswith(f"pid {os.getpid()} ")


def test_an_instance_listed_twice_is_refused_naming_file_and_id(tmp_path, capsys):
    rows = json.loads(INSTANCES.read_text())
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps([rows[0], rows[1], rows[0]]))
    config_path = write_config(tmp_path, instances={"path": str(twice)})
    assert run_batch_module.main(["--config", str(config_path)]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert str(twice) in error and f"instance_id '{rows[0]['instance_id']}' is listed twice (instances 0 and 2)" in error


# ---- 3. bad input: one line, non-zero exit, nothing run --------------------------------------------------------------


BAD_BATCH_INPUT = {
    "missing replay file": (["--agent.model.replay_path", "{tmp}/nope.yaml"], "nope.yaml: replay file does not exist"),
    "garbage replay file": (["--agent.model.replay_path", "{tmp}/garbage.yaml"], "garbage.yaml: not a valid replay file"),
    "replay file of the wrong shape": (["--agent.model.replay_path", "{tmp}/shape.yaml"], "expected a list of outputs"),
    "output dir is a file": (["--output_dir", "{tmp}/a_file"], "key 'output_dir': '{tmp}/a_file' is a file"),
    "no workers": (["--num_workers", "0"], "key 'num_workers': Input should be greater than or equal to 1"),
    "negative rollouts": (["--rollouts_per_instance", "-1"], "key 'rollouts_per_instance': Input should be greater"),
    "missing instance file": (["--instances.path", "{tmp}/none.json"], "none.json: instance file does not exist"),
    "empty instance file": (["--instances.path", "{tmp}/empty.json"], "empty.json' holds no instances"),
    "instance file not utf-8": (["--instances.path", "{tmp}/binary.json"], "binary.json: not UTF-8 text"),
    "filter matching nothing": (["--instances.filter", "^nothing"], "instances.filter: no instance id matches '^nothing'"),
    "bad filter regex": (["--instances.filter", "("], "instances.filter: invalid regular expression"),
    "slice of four parts": (["--instances.slice", "1:2:3:4"], "instances.slice: expected a Python slice"),
    "slice with step 0": (["--instances.slice", "::0"], "instances.slice: the step of '::0' must not be 0"),
    "slice past the end": (["--instances.slice", "500:"], "none of the"),
    "unknown deployment type": (["--env.deployment.type", "bogus"], "key 'env.deployment': Input tag 'bogus'"),
    "relative working dir": (["--env.working_dir", "testbed"], "key 'env.working_dir': expected an absolute path"),
    "workspace root is a file": (["--env.workspace_root", "{tmp}/a_file"], "key 'env.workspace_root': '{tmp}/a_file' is a file"),
    "unknown model provider": (["--config", "{tmp}/litellm.yaml"], "key 'agent.model.name': litellm knows no provider"),
    "template variable that does not exist": (["--agent.templates.system_template", "{{nonexistent}}"],
                                              "template uses an unknown variable ('nonexistent' is undefined)"),
    "unknown repository": (["--instances.path", "{tmp}/unknown_repo.json"], "key 'repo': "),
    "bad sha256 pin": (["--instances.path", "{tmp}/short_pin.json"], "key 'source.sha256': String should match pattern"),
    "unknown key": (["--num_worker", "2"], "key 'num_worker': unknown key"),
    "non-utf-8 config": (["--config", "{tmp}/binary.json"], "binary.json: not UTF-8 text"),
    "ray address that does not answer": (["--executor.type", "ray", "--executor.ray_address", "127.0.0.1:9"],
                                         "key 'executor.ray_address': nothing answers at '127.0.0.1:9'"),
}


@pytest.fixture
def bad_inputs(tmp_path: Path) -> Path:
    (tmp_path / "garbage.yaml").write_text("outputs: [unclosed\n")
    (tmp_path / "shape.yaml").write_text("- [1, 2]\n")
    (tmp_path / "a_file").write_text("")
    (tmp_path / "empty.json").write_text("[]")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    row = json.loads(INSTANCES.read_text())[0]
    (tmp_path / "unknown_repo.json").write_text(json.dumps([{**row, "repo": "nope"}]))
    (tmp_path / "short_pin.json").write_text(json.dumps([{**row, "source": {**row["source"], "sha256": "abc"}}]))
    write_config(tmp_path, model={"type": "litellm", "name": "nosuchprovider/x"}, name="litellm.yaml")
    return tmp_path


@pytest.mark.parametrize("case", BAD_BATCH_INPUT)
def test_bad_run_batch_input_is_one_line_and_runs_nothing(case, bad_inputs, capsys):
    args, expected = BAD_BATCH_INPUT[case]
    config = [] if args[0] == "--config" else ["--config", str(write_config(bad_inputs))]  # a case may bring its own
    argv = [*config, *(arg.replace("{tmp}", str(bad_inputs)) for arg in args)]
    assert run_batch_module.main(argv) == 2
    error = one_line_error(capsys.readouterr().err)
    assert expected.replace("{tmp}", str(bad_inputs)) in error
    assert not list((bad_inputs / "run").glob("*/*.traj"))


BAD_RUN_INPUT = {
    "instance id 5 is a string": (["--instance_id", "5"], "no instance with instance_id '5'"),
    "unknown instance id": (["--instance_id", "nope"], "no instance with instance_id 'nope'"),
    "missing instance file": (["--instance_file", "{tmp}/none.json", "--instance_id", "x"], "instance file does not exist"),
    "garbage replay file": (["--instance_id", "{iid}", "--agent.model.replay_path", "{tmp}/garbage.yaml"], "not a valid replay file"),
    "output dir is a file": (["--instance_id", "{iid}", "--output_dir", "{tmp}/a_file"], "is a file, expected a folder"),
}


@pytest.mark.parametrize("case", BAD_RUN_INPUT)
def test_bad_run_input_is_one_line(case, bad_inputs, capsys):
    args, expected = BAD_RUN_INPUT[case]
    config_path = write_config(bad_inputs)
    argv = ["--config", str(config_path), "--instance_file", str(INSTANCES),
            *(arg.replace("{tmp}", str(bad_inputs)).replace("{iid}", ids(1)[0]) for arg in args)]
    assert run_single.main(argv) == 2
    assert expected in one_line_error(capsys.readouterr().err)


def test_dotted_overrides_keep_text_that_yaml_would_turn_into_numbers(tmp_path):
    config = build_config(RunSingleConfig, [write_config(tmp_path)], [("instance_id", "5"), ("seed", "7")],
                          ignore_keys=BATCH_ONLY_KEYS)
    assert config.instance_id == "5" and config.seed == 7
    batch = build_config(RunBatchConfig, [write_config(tmp_path)], [("instances.slice", "5:20")])  # YAML 1.1: 320
    assert batch.instances.slice == "5:20"


@pytest.mark.slow
def test_sweagent_run_exits_non_zero_without_a_pred_when_the_environment_does_not_start(tmp_path):
    config_path = write_config(tmp_path, env={"deployment": {"type": "sandbox", "ro_binds": ["/no/such/dir"]}})
    iid = ids(1)[0]
    result = sweagent("run", "--config", str(config_path), "--instance_file", str(INSTANCES), "--instance_id", iid,
                      "--output_dir", str(tmp_path / "single"))
    assert result.returncode == 1
    error = one_line_error(result.stderr)
    assert "environment failed to start" in error and "/no/such/dir" in error
    assert load_trajectory(traj_path(tmp_path / "single", iid)).info.exit_status == "exit_environment_error"
    assert not traj_path(tmp_path / "single", iid).with_suffix(".pred").exists()


# ---- 4. scratch space after kill -9 -----------------------------------------------------------------------------------


def _scratch_holder(base: Path) -> subprocess.Popen[str]:
    """Another process that owns a scratch folder under `base` until it is killed."""
    code = ("import sys, time; from sweagent.utils.scratch import process_scratch_dir\n"
            "print(process_scratch_dir(sys.argv[1]), flush=True); time.sleep(600)")
    return subprocess.Popen([sys.executable, "-c", code, str(base)], stdout=subprocess.PIPE, text=True)


def test_a_live_processs_scratch_folder_is_kept_and_a_killed_ones_is_removed(tmp_path):
    alive, doomed = _scratch_holder(tmp_path), _scratch_holder(tmp_path)
    try:
        alive_dir, doomed_dir = Path(alive.stdout.readline().strip()), Path(doomed.stdout.readline().strip())
        (doomed_dir / "workspace").mkdir()
        assert remove_stale_scratch_dirs(tmp_path) == [] and alive_dir.is_dir() and doomed_dir.is_dir()
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        assert remove_stale_scratch_dirs(tmp_path) == [doomed_dir]
        assert alive_dir.is_dir() and not doomed_dir.exists()
        mine = process_scratch_dir(tmp_path)  # our own folder is never stale to us
        assert remove_stale_scratch_dirs(tmp_path) == [] and mine.is_dir()
    finally:
        for process in (alive, doomed):
            process.kill()
            process.wait()


def _emptied(folder: Path, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while list(folder.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not list(folder.iterdir())


def test_a_process_leaves_its_scratch_folder_to_a_detached_rm_at_exit_and_the_next_sweeps_unfinished_trash(tmp_path):
    """Exit does not wait for the deletion (a workspace's git objects take a tenth of a second or more), yet nothing
    stays: the folder is renamed at once to trash, a detached `rm` deletes it, and trash an `rm` did not finish is
    removed by the next process's sweep."""
    code = ("import sys; from sweagent.utils.scratch import process_scratch_dir\n"
            "folder = process_scratch_dir(sys.argv[1])\n"
            "for i in range(300): (folder / f'f{i}').write_text('x' * 1000)\n"
            "print(folder)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert not Path(done.stdout.strip()).exists()  # renamed before the process ended
    assert _emptied(tmp_path)
    unfinished = tmp_path / ".oec-trash-oec-proc-1-abc"
    (unfinished / "deep").mkdir(parents=True)
    assert remove_stale_scratch_dirs(tmp_path) == [] and not unfinished.exists()


@pytest.mark.slow
def test_workspaces_left_by_a_kill_9_are_removed_by_the_next_run(tmp_path):
    scratch = tmp_path / "scratch"
    slow = ["<function=bash><parameter=command>sleep 600</parameter></function>", "<function=submit></function>"]
    env = {"workspace_root": str(scratch), "deployment": {"type": "sandbox", "scratch_dir": str(scratch)}}
    config_path = write_config(tmp_path, slow, env=env, instances={"path": str(INSTANCES), "slice": ":1"})
    process = subprocess.Popen([sys.executable, "-m", "sweagent", "run-batch", "--config", str(config_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    iid = ids(1)[0]
    log = tmp_path / "run" / iid / f"{iid}.info.log"
    deadline = time.time() + 240
    while time.time() < deadline and "step 0" not in (log.read_text() if log.is_file() else ""):
        time.sleep(0.2)  # step 0 is the sleep: workspace, home, tmp and upload staging all exist now
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    left = list(scratch.glob(f"{PREFIX}{process.pid}-*"))
    assert len(left) == 1 and list(left[0].glob("oec-upload-*")), "the killed run left no workspace to clean"

    done = write_config(tmp_path, env=env, instances={"path": str(INSTANCES), "slice": ":1"}, name="done.yaml")
    result = sweagent("run-batch", "--config", str(done))
    assert result.returncode == 0, result.stderr
    assert not list(scratch.glob(f"{PREFIX}*"))  # the dead run's folder is gone, and the new run's own went at exit
    assert _emptied(scratch)  # ... by a detached `rm` that finishes soon after
    assert load_trajectory(traj_path(tmp_path / "run", iid)).info.exit_status == "submitted"


# ---- 5. the instance's own sdist pin ------------------------------------------------------------------------------------


@pytest.fixture
def cache_with_sdist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private OEC cache holding the first demo instance's genuine sdist (from the shared cache) and its tree."""
    source = get_profile(load_instances(INSTANCES)[0].repo).source
    archive = fetch_sdist(source)
    cache = tmp_path / "cache"
    (cache / "sdists").mkdir(parents=True)
    shutil.copy(archive, cache / "sdists" / archive.name)
    monkeypatch.setenv("OEC_CACHE", str(cache))
    pristine_tree(source)  # the profile's tree exists: a wrong pin must still not reach it
    return cache


def _first_instance_with_pin(sha256: str):
    instance = load_instances(INSTANCES)[0]
    return instance.model_copy(update={"source": get_profile(instance.repo).source.model_copy(update={"sha256": sha256})})


@pytest.mark.parametrize("kind", ["other", "same-prefix"])
def test_an_instance_pin_that_does_not_match_its_sdist_stops_the_build(kind, cache_with_sdist, tmp_path):
    genuine = get_profile(load_instances(INSTANCES)[0].repo).source
    pin = "0" * 64 if kind == "other" else genuine.sha256[:12] + "0" * 52  # the old cache found trees by 12 digits
    instance = _first_instance_with_pin(pin)
    with pytest.raises(WorkspaceError) as error:
        build_workspace(instance, tmp_path / "repo")
    message = str(error.value)
    assert "\n" not in message and f"instance {instance.instance_id}: " in message
    assert f"has sha256 {genuine.sha256}, expected {pin}" in message
    assert not (tmp_path / "repo").exists()
    assert [tree.name for tree in (cache_with_sdist / "trees").iterdir()] == [f"{genuine.package}-{genuine.version}-{genuine.sha256}"]


def test_sweagent_run_names_the_instance_and_both_hashes_when_its_pin_is_wrong(cache_with_sdist, tmp_path):
    instance = _first_instance_with_pin("f" * 64)
    instance_file = tmp_path / "pinned.json"
    instance_file.write_text(json.dumps([instance.model_dump(mode="json")]))
    result = sweagent("run", "--config", str(write_config(tmp_path)), "--instance_file", str(instance_file),
                      "--instance_id", instance.instance_id, "--output_dir", str(tmp_path / "single"),
                      env={**os.environ, "OEC_CACHE": str(cache_with_sdist)})
    assert result.returncode == 1
    error = one_line_error(result.stderr)
    assert instance.instance_id in error and get_profile(instance.repo).source.sha256 in error and "f" * 64 in error
