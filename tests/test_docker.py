"""The cluster path for real: rollouts in docker containers of SWE-smith-named images, graded by SWE-smith's own harness.

A docker engine without a bridge network is started when none answers (as `.ci/run` does) and the demo images are
built once for the module (`scripts/docker_images.sh build`, cached by their inputs). Where no engine can start,
the tests that need one skip and say why; the config and bad-input tests need none.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError
from swerex.runtime.abstract import BashAction, CreateBashSessionRequest

from oec.evaluation.run import evaluate_run
from sweagent.environment.container.deployment import ContainerDeploymentConfig, ContainerError, inspect_image, server_binds
from sweagent.environment.deployment import DeploymentConfig
from sweagent.environment.problem import InstanceProblem
from sweagent.environment.sandbox.limits import SandboxLimits
from sweagent.environment.sandbox.runtime import SandboxProcessError
from sweagent.environment.swe_env import EnvironmentConfig
from sweagent.instance import TaskInstance, load_instances
from sweagent.predictions import Prediction, write_prediction
from sweagent.run.config_loading import build_config
from sweagent.run.run_batch import RunBatchConfig, main as run_batch_main, run_batch
from sweagent.trajectory import load_trajectory, traj_path

REPO = Path(__file__).resolve().parents[1]
INSTANCES = REPO / "config" / "demo" / "instances.json"
DEMO = load_instances(INSTANCES)
BUNDLES = [{"path": "tools/registry"}, {"path": "tools/edit_anthropic"}, {"path": "tools/submit"}]
SECRET = "sk-oec-docker-test-271828"


def cmd(command: str) -> str:
    return f"<function=bash><parameter=command>{command}</parameter></function>"


def unrelated_source_file(instance: TaskInstance) -> str:
    """A wrong patch: it applies (a new file next to the buggy one, in the package) and fixes nothing."""
    folder = Path(instance.patch.split("\n", 1)[0].removeprefix("--- a/")).parent
    return f"--- /dev/null\n+++ b/{folder}/oec_note.py\n@@ -0,0 +1 @@\n+# not the fix\n"


def one_per_repo() -> list[TaskInstance]:
    chosen: dict[str, TaskInstance] = {}
    for instance in DEMO:
        chosen.setdefault(instance.repo, instance)
    return list(chosen.values())


def batch_config(folder: Path, instances_file: Path, ids: list[str], student: list[str], *, deployment: dict,
                 expert: dict | None = None, switch_step: int = 99, num_workers: int = 1) -> Path:
    """A run-batch config: a replayed student, handing over to `expert` (default: the same replay) at `switch_step`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "student.yaml").write_text(yaml.safe_dump(student))
    replay = {"model": {"type": "replay", "replay_path": str(folder / "student.yaml"), "name": "student"}}
    data = {"agent": {"templates": {"system_template": "{{command_docs}}"},
                      "tools": {"bundles": BUNDLES, "parse_function": {"type": "xml_function_calling"}},
                      "model": {"type": "switching", "models": [replay, expert or replay],
                                "switch": {"type": "step_count", "step": switch_step}}},
            "env": {"deployment": deployment},
            "instances": {"path": str(instances_file), "filter": "^(" + "|".join(ids) + ")$"},
            "output_dir": str(folder / "run"), "num_workers": num_workers}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# -- no engine needed ---------------------------------------------------------------------------------------------


def test_type_docker_is_our_container_deployment_with_a_configurable_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "base_prefix", "/opt/python-3.11")  # the interpreter's place is the next test's subject
    config = TypeAdapter(DeploymentConfig).validate_python({"type": "docker", "engine": "podman", "limits": {"memory_mb": 512}})
    assert isinstance(config, ContainerDeploymentConfig) and config.engine == "podman"
    with pytest.raises(ValidationError, match="pull"):
        TypeAdapter(DeploymentConfig).validate_python({"type": "docker", "pull": "never"})  # SWE-ReX's key is not ours
    instance = DEMO[0]
    deployment = config.for_problem(InstanceProblem(instance), EnvironmentConfig(deployment=config))
    argv = " ".join(deployment.create_argv(Path("/tmp/staging")))
    assert deployment.image == instance.image_name and argv.startswith("podman create --interactive --rm --init")
    for flag in ("--network none", "--cap-drop ALL", "--security-opt no-new-privileges", "--memory 512m --memory-swap 512m",
                 "--pids-limit 512", f"src={REPO / 'sweagent'},dst={REPO / 'sweagent'},readonly",
                 f"src={sys.prefix},dst={sys.prefix},readonly", "dst=/run/oec-upload,readonly", "setpriv --reuid=65534"):
        assert flag in argv, flag
    assert f"src={REPO},dst" not in argv  # the checkout (task set, outputs) is not mounted, only its sweagent package
    with pytest.raises(ContainerError, match="no key 'image_name' and no env.deployment.image"):
        config.for_problem(InstanceProblem(instance.model_copy(update={"image_name": None})), EnvironmentConfig(deployment=config))


def fake_engine(tmp_path: Path, stderr: str) -> str:
    """A container CLI that fails every call with `stderr`, as docker does without a daemon or an image."""
    path = tmp_path / "fake-docker"
    path.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit 1\n")
    path.chmod(0o755)
    return str(path)


def test_a_silent_engine_or_a_missing_image_is_one_line_saying_what_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    down = fake_engine(tmp_path, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?")
    with pytest.raises(ContainerError, match=r"the container engine does not answer .* start it with `scripts/docker_images.sh engine`$"):
        inspect_image(down, "any")
    (tmp_path / "no-image").mkdir()
    no_image = fake_engine(tmp_path / "no-image", "Error response from daemon: No such image: nope:latest")
    with pytest.raises(ContainerError, match=r"^image 'nope' does not exist in .*: build it with `scripts/docker_images.sh build`"):
        inspect_image(no_image, "nope")
    with pytest.raises(ContainerError, match="not-a-cli: not installed"):
        inspect_image(str(tmp_path / "not-a-cli"), "any")
    # run-batch stops before any rollout, with that line
    config = batch_config(tmp_path / "batch", INSTANCES, [DEMO[0].instance_id], [cmd("true")], deployment={"type": "docker", "engine": no_image})
    assert run_batch_main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"image '{DEMO[0].image_name}' does not exist" in err and "docker_images.sh build" in err


def test_an_interpreter_under_usr_is_one_line_before_any_container_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Binding Debian's /usr into a container would replace the image's own toolchain with the host's."""
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    with pytest.raises(ContainerError, match=r" lives in /usr .*scripts/setup\.sh$"):
        server_binds()


# -- a real engine ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def images() -> list[str]:
    """The engine (started when none answers) and every demo image (built once, then cached by its inputs)."""
    started = subprocess.run([str(REPO / "scripts" / "docker_images.sh"), "engine"], capture_output=True, text=True)
    if started.returncode != 0:
        reason = (started.stderr or started.stdout).strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"docker tests: no docker engine can start here ({reason[0]})")
    try:
        server_binds()
    except ContainerError as exc:
        pytest.skip(f"docker tests: {exc}")
    from sweagent.environment.container.images import ImageBuilder

    return ImageBuilder().build(DEMO)


@pytest.mark.slow
def test_the_same_replay_gives_the_same_observations_in_the_sandbox_and_in_docker(images: list[str], tmp_path: Path) -> None:
    instance = DEMO[0]
    steps = [
        cmd("git --no-pager log --format='%H %s'; git status --short; ls; id -u; echo $HOME"),
        cmd("python -c \"import sys; from addict import Dict; print(Dict(a={'b': 1}).a.b, sys.flags.dont_write_bytecode)\""),
        "<function=str_replace_editor><parameter=command>view</parameter><parameter=path>/testbed/addict/__init__.py</parameter></function>",
        cmd("cd addict && export MARK=kept; false; echo \"exit=$? cwd=$(pwd)\""),
        cmd("echo mark=$MARK; cd /testbed; cat > notes.txt <<'EOF'\nhello\nEOF\nls test_addict.py; git add -A && git --no-pager diff --cached --stat"),
        "<function=submit></function>",
    ]
    runs = {}
    for name, deployment in (("sandbox", {"type": "sandbox"}), ("docker", {"type": "docker"})):
        config = batch_config(tmp_path / name, INSTANCES, [instance.instance_id], steps, deployment=deployment)
        assert run_batch(build_config(RunBatchConfig, [config], [])) == {"submitted": 1}
        runs[name] = load_trajectory(traj_path(tmp_path / name / "run", instance.instance_id))
    sandbox, docker = runs["sandbox"], runs["docker"]
    assert [step.observation for step in docker.trajectory] == [step.observation for step in sandbox.trajectory]
    assert docker.info.submission == sandbox.info.submission and "notes.txt" in docker.info.submission
    first = docker.trajectory[0].observation
    assert "Task starting state" in first and "test_addict.py" not in first and "65534" in first  # hidden, unprivileged


@pytest.mark.slow
def test_the_container_is_walled_in_and_its_limits_hold(images: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    config = ContainerDeploymentConfig(limits=SandboxLimits(memory_mb=256, pids=64, disk_mb=64))
    deployment = config.for_problem(InstanceProblem(DEMO[0]), EnvironmentConfig(deployment=config))
    asyncio.run(deployment.start())
    try:
        asyncio.run(deployment.runtime.create_session(CreateBashSessionRequest()))

        def run(command: str, timeout: float = 30) -> str:
            return asyncio.run(deployment.runtime.run_in_session(BashAction(command=command, timeout=timeout, check="silent"))).output

        assert run("ls /sys/class/net; cat /proc/net/route | wc -l").split() == ["lo", "1"]  # loopback only, no route
        assert SECRET not in run("env; cat /proc/1/environ 2>&1")
        assert run("grep CapEff /proc/self/status; ls /proc/1/fd 2>&1 | head -1").split() == [
            "CapEff:", "0000000000000000", "ls:", "cannot", "open", "directory", "'/proc/1/fd':", "Permission", "denied"]
        assert run(f"ls {REPO}").split() == ["sweagent"]  # of the checkout, only the package the server runs
        inspected = json.loads(subprocess.run(["docker", "inspect", deployment.name], capture_output=True, text=True).stdout)[0]
        host = inspected["HostConfig"]
        assert (host["NetworkMode"], host["Memory"], host["PidsLimit"], host["CapDrop"]) == ("none", 256 << 20, 64, ["ALL"])
        assert "no-new-privileges" in host["SecurityOpt"] and not [e for e in inspected["Config"]["Env"] if SECRET in e]
        with pytest.raises(SandboxProcessError, match="disk limit exceeded"):
            run("for i in 1 2 3 4 5 6 7 8 9; do head -c 10000000 /dev/zero > /tmp/fill$i; done; sleep 5", timeout=30)
    finally:
        asyncio.run(deployment.stop())
    gone = subprocess.run(["docker", "ps", "-a", "--filter", f"name={deployment.name}", "-q"], capture_output=True, text=True)
    assert gone.stdout.strip() == ""


@pytest.mark.slow
def test_a_container_that_dies_mid_rollout_is_an_environment_error_and_the_batch_goes_on(images: list[str], tmp_path: Path) -> None:
    doomed, survivor = DEMO[0], DEMO[1]
    # The first step completes, so the rollout counts as the model's (recorded, not retried as an infra failure).
    steps = [cmd("echo first"), cmd("sleep 12; echo slept"), "<function=submit></function>"]
    config = batch_config(tmp_path, INSTANCES, [doomed.instance_id, survivor.instance_id], steps, deployment={"type": "docker"})

    def kill_the_first_container_once_it_sleeps() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            names = subprocess.run(["docker", "ps", "--filter", f"name=oec-{doomed.instance_id}-", "--format", "{{.Names}}"],
                                   capture_output=True, text=True).stdout.split()
            if names and "sleep 12" in subprocess.run(["docker", "top", names[0]], capture_output=True, text=True).stdout:
                subprocess.run(["docker", "kill", names[0]], capture_output=True)
                return
            time.sleep(0.5)

    killer = threading.Thread(target=kill_the_first_container_once_it_sleeps, daemon=True)
    killer.start()
    counts = run_batch(build_config(RunBatchConfig, [config], []))
    killer.join()
    assert counts == {"exit_environment_error": 1, "submitted": 1}
    dead = load_trajectory(traj_path(tmp_path / "run", doomed.instance_id))
    assert dead.info.exit_status == "exit_environment_error" and "exited" in dead.info.exit_message
    assert load_trajectory(traj_path(tmp_path / "run", survivor.instance_id)).info.exit_status == "submitted"


@pytest.mark.slow
def test_oracle_rollouts_in_docker_are_resolved_by_swesmiths_harness_and_both_backends_agree(images: list[str], tmp_path: Path) -> None:
    """Four demo instances from a file with SWE-smith's fields only (no `source`): rolled out in containers by a
    student that hands over to the oracle, graded by SWE-smith's harness in docker (with an empty and a wrong
    prediction for two more instances in the same harness call) and by the local backend: same verdicts."""
    picked = [*one_per_repo(), next(i for i in DEMO if i not in one_per_repo())]
    others = [i for i in DEMO if i not in picked][:2]
    swesmith_fields = ("instance_id", "repo", "patch", "FAIL_TO_PASS", "PASS_TO_PASS", "image_name", "problem_statement")
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps([{key: getattr(i, key) for key in swesmith_fields} for i in DEMO]))
    oracle = {"model": {"type": "oracle", "instances_path": str(tasks)}}
    config = batch_config(tmp_path, tasks, [i.instance_id for i in picked], [cmd("ls")], deployment={"type": "docker"},
                          expert=oracle, switch_step=1, num_workers=2)
    assert run_batch(build_config(RunBatchConfig, [config], [])) == {"submitted": len(picked)}
    run_dir = tmp_path / "run"
    empty, wrong = others
    for instance, patch in ((empty, ""), (wrong, unrelated_source_file(wrong))):
        write_prediction(run_dir / instance.instance_id / f"{instance.instance_id}.pred",
                         Prediction(instance_id=instance.instance_id, model_name_or_path="test", model_patch=patch))
    verdicts = {}
    for backend in ("docker", "local"):
        evaluate_run(run_dir, instances_file=tasks, eval_dir=tmp_path / backend, backend=backend, workers=2)
        verdicts[backend] = {i.instance_id: json.loads((tmp_path / backend / i.instance_id / "report.json").read_text())["resolved"]
                             for i in [*picked, *others]}
    assert verdicts["docker"] == verdicts["local"] == {**{i.instance_id: True for i in picked}, **{i.instance_id: False for i in others}}
    assert (tmp_path / "docker" / picked[0].instance_id / "test_output.txt").read_text().count(">>>>> Start Test Output") == 1


@pytest.mark.slow
def test_a_container_left_by_an_interrupted_harness_call_is_removed_before_the_round_runs(images: list[str], tmp_path: Path) -> None:
    """SWE-smith names its containers by run id and instance id: one left by a killed call blocks every later call of
    that instance (the name is taken), so each round first removes its own names, and nothing else."""
    from oec.evaluation.docker_harness import SwesmithRound, remove_stale_containers

    instance = DEMO[0]
    round_ = SwesmithRound("oec.stale-test", [], tmp_path, {instance.instance_id: instance.instance_id})
    (stale,) = round_.container_names()
    bystander = f"oec-stale-test-bystander-{time.monotonic_ns()}"
    for name in (stale, bystander):
        created = subprocess.run(["docker", "create", "--network", "none", "--name", name, instance.image_name, "true"],
                                 capture_output=True, text=True)
        assert created.returncode == 0, created.stderr
    try:
        remove_stale_containers(round_)
        remove_stale_containers(round_)  # nothing left to remove is no error
        names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True).stdout.split()
        assert stale not in names and bystander in names
    finally:
        subprocess.run(["docker", "rm", "--force", stale, bystander], capture_output=True)
