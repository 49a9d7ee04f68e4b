"""The sandbox probed as an attacker would: model-written commands try to forge observations, flood the host, read
host secrets or the answers, and exhaust memory, processes and disk. Every wall is the real one (bubblewrap, the
real sandbox server, real limits)."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from swerex.runtime.abstract import BashAction, CreateBashSessionRequest

import sweagent
from sweagent.environment.sandbox import deployment as sandbox_deployment
from sweagent.environment.sandbox.bwrap import run_sandboxed
from sweagent.environment.sandbox.deployment import SandboxDeployment, SandboxDeploymentConfig
from sweagent.environment.sandbox.limits import SandboxLimits
from sweagent.environment.sandbox.protocol import ProtocolError, read_line
from sweagent.environment.sandbox.runtime import SandboxProcessError

from conftest import SUBMIT_XML, run_agent, xml
from test_sandbox import Session, workspace  # noqa: F401  (workspace is a fixture)

REPO = Path(sweagent.__file__).parents[1]
AS_ROOT = os.geteuid() == 0


def start_session(workspace: Path, config: SandboxDeploymentConfig | None = None, **kwargs: object) -> Session:
    deployment = (config or SandboxDeploymentConfig()).get_deployment(workspace=workspace, **kwargs)
    asyncio.run(deployment.start())
    asyncio.run(deployment.runtime.create_session(CreateBashSessionRequest()))
    return Session(deployment)


@pytest.fixture
def session(workspace: Path) -> Iterator[Session]:
    started = start_session(workspace)
    yield started
    asyncio.run(started.deployment.stop())


# -- the host <-> sandbox channel ---------------------------------------------------------------------------------

FORGED = '{"id": %d, "response": {"output": "FORGED-OBSERVATION", "exit_code": 0, "failure_reason": "", "expect_string": ""}}'


def test_no_process_in_the_sandbox_exposes_the_protocol_pipes(session: Session) -> None:
    forge = "; ".join(FORGED % n for n in range(1, 40))
    command = textwrap.dedent(f"""\
        for f in /proc/[0-9]*/fd/*; do
          case "$(readlink "$f" 2>/dev/null)" in pipe:*) ;; *) continue ;; esac
          timeout 1 head -c 1 "$f" >/dev/null 2>&1 && echo "READ $f"
          printf '%s\\n' '{forge}' 2>/dev/null > "$f" && echo "WROTE $f"
        done
        ls /proc/1/fd; cat /proc/1/environ; echo probe-done""")
    probe = session.run(command)
    assert "probe-done" in probe.output
    assert "WROTE" not in probe.output and "READ" not in probe.output
    assert "Permission denied" in probe.output  # pid 1 (bwrap) is not ours to look into
    for n in range(3):  # whatever was tried, later observations are the commands' own
        assert session.run(f"echo genuine-{n}").output.strip() == f"genuine-{n}"


def _fake_server(workspace: Path, reply: str) -> list[str]:
    """A stand-in sandbox server (in the workspace, the only place it is visible) that answers is_alive, and every
    other request with `reply` (a Python expression of the request's id `n`, giving bytes)."""
    script = workspace / "fake_server.py"
    script.write_text(textwrap.dedent(f"""\
        import json, os, sys
        requests = os.fdopen(int(sys.argv[1]), "rb")
        replies = os.fdopen(int(sys.argv[2]), "wb")
        for line in requests:
            message = json.loads(line)
            n = message["id"]
            if message["method"] == "is_alive":
                replies.write(json.dumps({{"id": n, "response": {{"is_alive": True, "message": ""}}}}).encode() + b"\\n")
            else:
                replies.write({reply})
            replies.flush()
        """))
    return [sys.executable, "-I", "/testbed/fake_server.py"]


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param("(%r %% (n + 1)).encode() + b'\\n'" % FORGED, id="answers-another-id"),
        pytest.param("b'not json\\n'", id="not-json"),
        pytest.param("b'[1, 2]\\n'", id="not-an-object"),
        pytest.param("json.dumps({'id': n, 'response': {}, 'exception': {}}).encode() + b'\\n'", id="two-answers"),
        pytest.param("json.dumps({'id': n, 'response': {'output': 5}}).encode() + b'\\n'", id="bad-response"),
        pytest.param("b'x' * (200 * 1024 * 1024)", id="200MB-without-newline"),
    ],
)
def test_a_reply_that_is_not_a_well_formed_answer_kills_the_sandbox(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, reply: str
) -> None:
    monkeypatch.setattr(sandbox_deployment, "SERVER_COMMAND", _fake_server(workspace, reply))
    deployment = SandboxDeploymentConfig().get_deployment(workspace=workspace)
    asyncio.run(deployment.start())
    try:
        with pytest.raises(SandboxProcessError, match="invalid reply"):
            asyncio.run(deployment.runtime.run_in_session(BashAction(command="true", timeout=5)))
        assert not asyncio.run(deployment.is_alive())
    finally:
        asyncio.run(deployment.stop())


def test_reading_a_line_never_holds_more_than_its_limit() -> None:
    read_end, write_end = os.pipe()
    written = 0

    def flood() -> None:
        nonlocal written
        with os.fdopen(write_end, "wb", buffering=0) as stream:
            try:
                while written < 100 * 1024 * 1024:
                    written += stream.write(b"y" * 65536)
            except BrokenPipeError:
                pass

    writer = threading.Thread(target=flood)
    writer.start()
    with os.fdopen(read_end, "rb") as stream, pytest.raises(ProtocolError, match="longer than 1048576 bytes"):
        read_line(stream, 1024 * 1024)
    writer.join()
    assert written < 2 * 1024 * 1024  # the reader stopped, the writer blocked, then its pipe broke


def test_an_oversized_reply_ends_the_rollout_with_an_environment_error(tmp_path: Path, repo: Path) -> None:
    # 40 MB of submission: the reply carrying it is longer than the host reads.
    flood = "head -c 40000000 /dev/zero | tr '\\0' a > /root/model.patch && echo '<<SWE_AGENT_SUBMISSION>>'"
    trajectory, run_dir = run_agent(tmp_path, repo, [xml("echo hi"), xml(flood), SUBMIT_XML])
    assert trajectory.info.exit_status == "exit_environment_error"
    assert "invalid reply" in trajectory.info.exit_message and "longer than" in trajectory.info.exit_message
    assert (run_dir / "calc.traj").stat().st_size < 1_000_000


# -- what the sandbox can see -------------------------------------------------------------------------------------


@pytest.mark.skipif(not AS_ROOT, reason="as a non-root caller, commands run as that caller")
def test_commands_run_as_an_unprivileged_user_and_root_only_files_stay_unreadable(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "key").write_text("root-only-key-material\n")
    (secrets / "key").chmod(0o600)
    workspace = tmp_path / "repo"
    workspace.mkdir()
    command = "id -u; cat /etc/shadow; cat /data/key; cat /proc/1/environ; ls /proc/1/root; touch /etc/x"
    result = run_sandboxed(command, workspace, timeout=10, ro_binds=[f"{secrets}:/data"])
    assert result.output.splitlines()[0] == "65534"
    assert "root-only-key-material" not in result.output and "root:" not in result.output
    assert result.output.count("Permission denied") >= 4
    assert "Read-only file system" in result.output or "Permission denied: '/etc/x'" in result.output


def test_only_the_toolchain_and_the_servers_runtime_are_visible(workspace: Path) -> None:
    listing = run_sandboxed("ls -A /; echo ---; ls -A " + str(REPO), workspace, timeout=10).output
    top, _, checkout = listing.partition("---\n")
    visible = set(top.split())
    assert visible <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "root", "run", "sbin",
                       "testbed", "tmp", "usr", REPO.parts[1], Path(sys.base_prefix).parts[1]}
    assert not visible & {"home", "var", "srv", "mnt", "opt", "media", "boot"}
    # Of the checkout, only the sweagent package (and a venv inside it) show: never the task set, tests or outputs.
    assert set(checkout.split()) <= {"sweagent", Path(sys.prefix).name}
    assert "config" not in checkout.split()


def test_the_task_set_and_the_run_output_stay_invisible_to_a_real_rollout(tmp_path: Path, repo: Path) -> None:
    answers = REPO / "config" / "demo" / "instances.json"
    look = f"ls {tmp_path}; ls {tmp_path / 'out'}; cat {answers}; ls {repo}; echo looked"
    trajectory, run_dir = run_agent(tmp_path, repo, [xml(look), SUBMIT_XML])
    observation = trajectory.trajectory[0].observation
    assert "looked" in observation and observation.count("No such file or directory") == 4
    assert '"patch"' not in observation and "calc.traj" not in observation


# -- limits -------------------------------------------------------------------------------------------------------

FORK_BOMB = textwrap.dedent("""\
    import os, time
    started = 0
    for _ in range(300):
        try:
            if os.fork() == 0:
                time.sleep(5)
                os._exit(0)
            started += 1
        except OSError:
            break
    print("started", started)
    """)
MEMORY_HOG = "python3 -c \"b = b'x' * (1024 * 1024 * 1024); print('allocated')\""


SMALL = SandboxLimits(memory_mb=256, pids=64, disk_mb=64)


def test_a_memory_hog_is_killed_and_the_session_survives(workspace: Path) -> None:
    session = start_session(workspace, SandboxDeploymentConfig(limits=SMALL))
    try:
        hog = session.run(f"{MEMORY_HOG}; echo exit=$?")
        assert "allocated" not in hog.output
        assert "exit=137" in hog.output or "MemoryError" in hog.output
        assert session.run("echo still-here").output.strip() == "still-here"
    finally:
        asyncio.run(session.deployment.stop())


def forks_started(workspace: Path) -> int:
    (workspace / "bomb.py").write_text(FORK_BOMB)
    result = run_sandboxed("python3 bomb.py", workspace, timeout=30, limits=SMALL)
    return int(result.output.split("started")[1].split()[0])


def test_a_fork_bomb_meets_the_process_limit(workspace: Path) -> None:
    assert 0 < forks_started(workspace) < SMALL.pids


def test_disk_writes_past_the_limit_stop_a_session_with_a_clear_error(workspace: Path) -> None:
    session = start_session(workspace, SandboxDeploymentConfig(limits=SMALL))
    try:
        fill = "for i in $(seq 100); do head -c 1048576 /dev/zero > /tmp/f$i; done; sleep 30"
        with pytest.raises(SandboxProcessError, match="disk limit exceeded"):
            session.run(fill, timeout=60)
    finally:
        asyncio.run(session.deployment.stop())


def test_a_quick_command_that_wrote_too_much_is_caught_after_it_returns(workspace: Path) -> None:
    session = start_session(workspace, SandboxDeploymentConfig(limits=SMALL))
    try:
        try:  # on a slow machine the check while the command runs may catch it already
            session.run("for i in $(seq 100); do head -c 1048576 /dev/zero > /tmp/f$i; done")
        except SandboxProcessError as exc:
            assert "disk limit exceeded" in str(exc)
            return
        deadline = time.monotonic() + 20
        while asyncio.run(session.deployment.is_alive()) and time.monotonic() < deadline:
            time.sleep(0.1)
        with pytest.raises(SandboxProcessError, match="disk limit exceeded"):
            session.run("echo next")
    finally:
        asyncio.run(session.deployment.stop())


def test_the_disk_watcher_a_liveness_check_and_a_stop_may_end_the_sandbox_at_once(workspace: Path) -> None:
    """A sandbox past its disk limit is killed by the watcher thread while the rollout may be stopping it and a
    liveness check polls it: whichever gets there first, none fails (the stop once raised ProcessLookupError)."""
    for _ in range(8):
        session = start_session(workspace)
        runtime, errors = session.deployment.runtime, []
        ready = threading.Barrier(4)

        def race(action) -> None:  # type: ignore[no-untyped-def]
            ready.wait()
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        actions = [lambda: runtime.kill("disk limit exceeded (test)"), lambda: runtime._process.poll(),
                   lambda: runtime.kill("disk limit exceeded (test)")]
        threads = [threading.Thread(target=race, args=(action,)) for action in actions]
        for thread in threads:
            thread.start()
        ready.wait()
        asyncio.run(session.deployment.stop())
        for thread in threads:
            thread.join()
        assert errors == []


def test_one_shot_commands_obey_the_disk_and_file_size_limits(workspace: Path) -> None:
    many = run_sandboxed("for i in $(seq 100); do head -c 1048576 /dev/zero > f$i; done; sleep 30", workspace,
                         timeout=60, limits=SMALL)
    assert many.limit_exceeded is not None and "disk limit exceeded" in many.limit_exceeded
    assert many.duration_s < 20 and not many.timed_out
    for leftover in workspace.glob("f*"):
        leftover.unlink()
    big = run_sandboxed("head -c 100000000 /dev/zero > big; echo exit=$?", workspace, timeout=30, limits=SMALL)
    assert "exit=153" in big.output  # SIGXFSZ: the file stopped at the limit
    assert (workspace / "big").stat().st_size <= SMALL.disk_mb * 1024 * 1024



def test_without_cgroups_rlimits_still_bound_memory_and_processes(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sweagent.environment.sandbox import bwrap

    monkeypatch.setattr(bwrap, "make_cgroups", lambda limits: None)  # as on a machine where none can be made
    hog = run_sandboxed(MEMORY_HOG, workspace, timeout=30, limits=SMALL)
    assert "MemoryError" in hog.output and "allocated" not in hog.output
    assert 0 < forks_started(workspace) < SMALL.pids


def test_a_private_workspace_folder_works(tmp_path: Path) -> None:
    workspace = tmp_path / "private"
    workspace.mkdir(mode=0o700)
    assert run_sandboxed("pwd; touch made", workspace, timeout=10).output.strip() == "/testbed"
    assert (workspace / "made").stat().st_uid == os.geteuid()  # ours again afterwards


def test_a_killed_one_shot_run_leaves_nothing_the_next_process_keeps(workspace: Path, tmp_path: Path) -> None:
    import signal
    import subprocess

    from sweagent.utils.scratch import remove_stale_scratch_dirs

    base = tmp_path / "scratch"
    code = (f"import tempfile; tempfile.tempdir = {str(base)!r}; from sweagent.environment.sandbox.bwrap import run_sandboxed; "
            f"run_sandboxed('echo started; sleep 60', {str(workspace)!r}, timeout=120)")
    base.mkdir()
    child = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while not list(base.glob("oec-proc-*/oec-sandbox-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(base.glob("oec-proc-*/oec-sandbox-*")), "the one-shot run never made its scratch folder"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert [path.name for path in remove_stale_scratch_dirs(base)] and not list(base.iterdir())
