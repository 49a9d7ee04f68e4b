"""The bubblewrap sandbox, exercised for real: a persistent swerex bash session inside bwrap, and one-shot commands.

Every runtime call goes through its own `asyncio.run`, as SWE-agent-style callers do, so these tests also show
that the runtime does not depend on the event loop that started it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError
from swerex.exceptions import (
    BashIncorrectSyntaxError,
    CommandTimeoutError,
    DeploymentNotStartedError,
    DeploymentStartupError,
)
from swerex.runtime.abstract import (
    BashAction,
    BashInterruptAction,
    BashObservation,
    CreateBashSessionRequest,
    ReadFileRequest,
    UploadRequest,
    WriteFileRequest,
)

from sweagent.environment.deployment import DeploymentConfig, ModalDeploymentConfig
from sweagent.environment.sandbox.bwrap import SANDBOX_PATH, SANDBOX_UID, SandboxError, run_sandboxed
from sweagent.environment.sandbox.deployment import SandboxDeployment, SandboxDeploymentConfig
from sweagent.environment.sandbox.runtime import SandboxProcessError

SECRET = "sk-oec-test-secret-3141592653"


class Session:
    """A started sandbox deployment with one bash session, driven synchronously."""

    def __init__(self, deployment: SandboxDeployment) -> None:
        self.deployment = deployment
        self.runtime = deployment.runtime

    def run(self, command: str, timeout: float = 10) -> BashObservation:
        action = BashAction(command=command, timeout=timeout, check="silent")
        return asyncio.run(self.runtime.run_in_session(action))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    (path / "README.md").write_text("task repository\n")
    return path


@pytest.fixture
def session(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    # A secret in the host environment, as on a machine that runs the expert through an API.
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    read_only = tmp_path / "readonly"
    read_only.mkdir()
    (read_only / "canary.txt").write_text("keep me\n")
    deployment = SandboxDeploymentConfig(ro_binds=[f"{read_only}:/data"]).get_deployment(
        workspace=workspace, home=tmp_path / "home", tmp=tmp_path / "tmp", env={"OEC_TASK": "demo"}
    )
    asyncio.run(deployment.start())
    asyncio.run(deployment.runtime.create_session(CreateBashSessionRequest()))
    yield Session(deployment)
    asyncio.run(deployment.stop())


def test_session_keeps_cwd_and_exported_variables_between_actions(session: Session) -> None:
    assert session.run("pwd").output.strip() == "/testbed"
    session.run("mkdir -p sub && cd sub && export GREETING='hello there'")
    observation = session.run('pwd; echo "$GREETING"; echo "$OEC_TASK"')
    assert observation.output.splitlines() == ["/testbed/sub", "hello there", "demo"]
    assert observation.exit_code == 0
    assert session.run("false").exit_code == 1


def test_heredoc_and_multiline_commands_run_as_written(session: Session, workspace: Path) -> None:
    source = "def f(x):\n    return x * 2  # $HOME is not expanded in a quoted heredoc\n\nprint(f(21))\n"
    observation = session.run(f"cat <<'EOF' > f.py\n{source}EOF\npython3 f.py")
    assert observation.output.strip() == "42"
    assert (workspace / "f.py").read_text() == source
    observation = session.run("for i in 1 2 3; do\n  echo line$i\ndone\ntest -f f.py && \\\n  echo found")
    assert observation.output.split() == ["line1", "line2", "line3", "found"]
    with pytest.raises(BashIncorrectSyntaxError) as excinfo:  # swerex's own exception, raised on the host
        session.run("echo (")
    assert "syntax error" in excinfo.value.extra_info["bash_stderr"]


def test_any_text_reaches_bash_unchanged_and_a_syntax_error_runs_nothing(session: Session, workspace: Path) -> None:
    # tabs (readline would complete), `!` (history expansion), quotes, backslashes, non-ASCII, no final newline
    text = "\tindented\t!x !! $'q' \"dq\" \\n \\ ünï €\r\n`tick` ${A} }\n{\nEOF2 x"
    observation = session.run(f"cat <<'EOF' > t.txt\n{text}\nEOF\nprintf %s done")
    assert observation.output == "done" and observation.exit_code == 0
    assert (workspace / "t.txt").read_bytes() == (text + "\n").encode()
    assert session.run("printf 'no newline'; (exit 7)").output == "no newline"
    assert session.run("(exit 7)").exit_code == 7 and session.run("").exit_code == 0
    assert session.run("# only a comment").output == ""
    with pytest.raises(BashIncorrectSyntaxError):
        session.run("touch ran.txt\nif true; then echo unclosed")
    with pytest.raises(BashIncorrectSyntaxError):
        session.run("echo 'unterminated")
    assert not (workspace / "ran.txt").exists()
    # printed prompt-like text and variables do not end a command early
    assert session.run("set | grep -c OECPS1; env | grep -c PS1; echo end").output.split()[-1] == "end"
    assert session.run("echo after").output.strip() == "after"


def test_long_commands_arrive_whole_even_after_a_command_restores_canonical_input(session: Session, workspace: Path) -> None:
    """A line longer than the terminal's canonical limit (4095 bytes), as a file-writing edit makes; a command that
    sets the terminal back to canonical input (`stty sane`) must not cut the next long one."""
    content = "".join(f"line {i}: {'x' * 90}\n" for i in range(2000))  # about 200 kB
    for setup in ("true", "stty sane"):
        session.run(setup)
        observation = session.run(f"cat <<'EOF' > big.txt\n{content}EOF\nwc -c < big.txt")
        assert observation.exit_code == 0 and observation.output.strip() == str(len(content))
        assert (workspace / "big.txt").read_text() == content


def test_timeout_raises_command_timeout_error_and_interrupt_recovers_the_session(session: Session) -> None:
    session.run("cd /tmp && export KEPT=yes")
    started = time.monotonic()
    with pytest.raises(CommandTimeoutError):
        session.run("sleep 30", timeout=1)
    assert time.monotonic() - started < 5
    asyncio.run(session.runtime.run_in_session(BashInterruptAction()))
    leftover_sleeps = "cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -c 'slee[p] 30'"
    observation = session.run(f"echo alive; pwd; echo $KEPT; {leftover_sleeps}")
    assert observation.output.split() == ["alive", "/tmp", "yes", "0"]


def test_a_command_deaf_to_ctrl_c_is_killed_and_leaves_no_job_notice_or_marker_behind(session: Session) -> None:
    """The interrupt's last resort (suspend, kill): the job is reaped at once, so bash's `Killed` notice is not
    printed into the next command's output, and the session's markers never reach an observation."""
    with pytest.raises(CommandTimeoutError):
        session.run("trap '' INT; sleep 30", timeout=1)
    interrupted = asyncio.run(session.runtime.run_in_session(BashInterruptAction(timeout=0.5, n_retry=2)))
    assert "OECPS1" not in interrupted.output and "OECRC" not in interrupted.output
    assert session.run("echo alive").output.split() == ["alive"]


@pytest.mark.parametrize("command", ["while true; do :; done", "yes | cat > /dev/null", "while true; do sleep 1; done"],
                         ids=["builtin_loop", "pipeline", "loop_of_children"])
def test_interrupt_ends_shell_loops_and_pipelines_and_the_next_output_is_clean(session: Session, command: str) -> None:
    """bash itself busy (a builtin loop), a foreground pipeline, a loop of children: one Ctrl-C ends each, and no
    prompt, marker or job notice reaches the next command's output."""
    with pytest.raises(CommandTimeoutError):
        session.run(command, timeout=0.5)
    interrupted = asyncio.run(session.runtime.run_in_session(BashInterruptAction()))
    assert "OECPS1" not in interrupted.output and "OECRC" not in interrupted.output
    assert session.run("echo alive; jobs").output == "alive\n"


def test_commands_start_with_every_signal_at_its_default_even_when_oec_ignores_sigint(workspace: Path, tmp_path: Path) -> None:
    """As from a terminal, whatever OEC inherited: Python's ignored SIGPIPE would make `yes | head` print 'Broken
    pipe' into the observation, and an OEC started in the background by a shell (SIGINT ignored) would pass a
    Ctrl-C-deaf shell to the agent and to the tests a grader runs."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        deployment = SandboxDeploymentConfig().get_deployment(workspace=workspace, home=tmp_path / "home", tmp=tmp_path / "tmp")
        asyncio.run(deployment.start())
        try:
            asyncio.run(deployment.runtime.create_session(CreateBashSessionRequest()))
            session = Session(deployment)
            assert session.run("sh -c 'grep SigIgn /proc/$$/status'").output.split() == ["SigIgn:", "0" * 16]
            assert session.run("yes | head -1; echo ${PIPESTATUS[@]}").output.split() == ["y", "141", "0"]
        finally:
            asyncio.run(deployment.stop())
        graded = run_sandboxed("grep SigIgn /proc/self/status", workspace=workspace, timeout=30)
        assert graded.output.split() == ["SigIgn:", "0" * 16]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_writes_outside_the_writable_mounts_fail_and_the_host_is_untouched(session: Session, tmp_path: Path) -> None:
    hostname = Path("/etc/hostname").read_bytes()
    observation = session.run("touch /usr/x; rm -rf /etc/hostname; rm -f /data/canary.txt; touch /newdir; echo done")
    assert observation.output.count("Read-only file system") == 4
    assert not Path("/usr/x").exists()
    assert Path("/etc/hostname").read_bytes() == hostname
    assert (tmp_path / "readonly" / "canary.txt").read_text() == "keep me\n"
    with pytest.raises(OSError, match="Read-only file system"):
        asyncio.run(session.runtime.write_file(WriteFileRequest(path="/usr/x", content="no")))
    # The writable mounts are exactly the per-instance folders given to the deployment.
    session.run("echo a > /testbed/w.txt; echo b > /root/w.txt; echo c > /tmp/w.txt")
    assert [(tmp_path / sub / "w.txt").read_text() for sub in ("repo", "home", "tmp")] == ["a\n", "b\n", "c\n"]


def test_network_is_cut_off_even_from_the_host_loopback(session: Session) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        observation = session.run(f"(echo hello > /dev/tcp/127.0.0.1/{port}) 2>&1; echo status=$?")
        assert "Connection refused" in observation.output
        assert observation.output.strip().endswith("status=1")
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    interfaces = session.run("tail -n +3 /proc/net/dev | cut -d: -f1").output.split()
    assert interfaces == ["lo"]


def test_host_secrets_do_not_reach_commands(session: Session, workspace: Path, tmp_path: Path) -> None:
    assert os.environ["OPENAI_API_KEY"] == SECRET
    observation = session.run("env; cat /proc/[0-9]*/environ | tr '\\0' '\\n'")
    assert SECRET not in observation.output and "OPENAI_API_KEY" not in observation.output
    assert "HOME=/root" in observation.output
    # /root is the per-instance home, not the host's.
    assert session.run("ls -A /root").output.split() == sorted(os.listdir(tmp_path / "home"))
    result = run_sandboxed("env", workspace, timeout=10)
    assert SECRET not in result.output and "OPENAI_API_KEY" not in result.output


def test_the_host_users_home_is_not_there(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A non-root user's home (here a stand-in outside /tmp and /root) holds credentials such as ~/.netrc.
    home = Path(tempfile.mkdtemp(prefix="oec-fake-home-", dir="/var/tmp"))
    try:
        (home / ".netrc").write_text(f"machine api.example.com password {SECRET}\n")
        monkeypatch.setenv("HOME", str(home))
        result = run_sandboxed(f"ls -A {home}; cat {home}/.netrc; touch {home}/x; echo checked", workspace, timeout=10)
    finally:
        shutil.rmtree(home)
    assert SECRET not in result.output
    assert result.output.count("No such file or directory") == 3
    assert result.output.endswith("checked\n")


def test_commands_cannot_write_into_the_server_pipes(session: Session) -> None:
    # The bash session's parent is the sandbox server; forged replies on its stdout would reach the host.
    observation = session.run("for fd in /proc/$PPID/fd/*; do echo '{\"id\": 1}' > $fd && echo WROTE; done 2>&1")
    assert "WROTE" not in observation.output and "Permission denied" in observation.output
    assert session.run("echo still fine").output.strip() == "still fine"


def test_file_operations_see_what_commands_see(session: Session, workspace: Path, tmp_path: Path) -> None:
    runtime = session.runtime
    asyncio.run(runtime.write_file(WriteFileRequest(path="/testbed/pkg/new.py", content="X = 1\n")))
    assert (workspace / "pkg" / "new.py").read_text() == "X = 1\n"
    asyncio.run(runtime.write_file(WriteFileRequest(path="/root/notes/todo.txt", content="fix it\n")))
    assert session.run("cat /root/notes/todo.txt").output == "fix it\n"
    session.run("echo from-bash > /testbed/made.txt")
    assert asyncio.run(runtime.read_file(ReadFileRequest(path="/testbed/made.txt"))).content == "from-bash\n"
    with pytest.raises(FileNotFoundError):
        asyncio.run(runtime.read_file(ReadFileRequest(path="/root/missing.txt")))

    bundle = tmp_path / "bundles" / "greet"
    (bundle / "bin").mkdir(parents=True)
    (bundle / "bin" / "greet").write_text("#!/bin/bash\necho \"hi $1\"\n")
    (bundle / "bin" / "greet").chmod(0o755)
    (bundle / "config.yaml").write_text("tools: {}\n")
    asyncio.run(runtime.upload(UploadRequest(source_path=str(bundle), target_path="/root/tools/greet")))
    assert session.run("/root/tools/greet/bin/greet there").output.strip() == "hi there"
    asyncio.run(runtime.upload(UploadRequest(source_path=str(bundle / "config.yaml"), target_path="/testbed/c.yaml")))
    assert (workspace / "c.yaml").read_text() == "tools: {}\n"
    # Staged as hard links to the host's files, uploaded as copies: writing what was uploaded leaves the host's alone.
    session.run("echo tampered >> /root/tools/greet/bin/greet; echo tampered > /testbed/c.yaml; chmod 777 /testbed/c.yaml")
    assert (bundle / "bin" / "greet").read_text() == "#!/bin/bash\necho \"hi $1\"\n"
    assert (bundle / "config.yaml").read_text() == "tools: {}\n" and (bundle / "config.yaml").stat().st_mode & 0o777 != 0o777
    # Uploads are staged where commands can read but not write, and the staging copy is gone afterwards.
    observation = session.run("touch /run/oec-upload/x; ls -A /run/oec-upload | wc -l")
    assert "Read-only file system" in observation.output and observation.output.split()[-1] == "0"


def test_a_killed_sandbox_reports_itself_dead(session: Session) -> None:
    assert asyncio.run(session.deployment.is_alive(timeout=5))
    session.runtime.kill("test")
    with pytest.raises(SandboxProcessError):
        session.run("echo hi")
    assert not asyncio.run(session.deployment.is_alive(timeout=5))


def test_a_deployment_outlives_the_thread_that_started_it(workspace: Path) -> None:
    # Batch runs start deployments in worker threads; bwrap's --die-with-parent watches the spawning *thread*.
    deployment = SandboxDeploymentConfig().get_deployment(workspace=workspace)
    starter = threading.Thread(target=lambda: asyncio.run(deployment.start()))
    starter.start()
    starter.join()
    try:
        asyncio.run(deployment.runtime.create_session(CreateBashSessionRequest()))
        assert Session(deployment).run("echo still here").output == "still here\n"
    finally:
        asyncio.run(deployment.stop())


def test_a_sandbox_server_that_cannot_start_is_a_startup_error(workspace: Path, tmp_path: Path) -> None:
    # Hiding the project's Python inside the sandbox makes the server fail to start.
    empty = tmp_path / "empty"
    empty.mkdir()
    deployment = SandboxDeploymentConfig(ro_binds=[f"{empty}:{sys.prefix}"]).get_deployment(workspace=workspace)
    with pytest.raises(DeploymentStartupError, match="the sandbox server did not start.*exited"):
        asyncio.run(deployment.start())
    assert not asyncio.run(deployment.is_alive())


def test_run_sandboxed_runs_one_command_with_the_callers_environment(workspace: Path, tmp_path: Path) -> None:
    # A test venv outside the visible host tree (under /tmp, which the sandbox replaces) is bound back because
    # the environment names it.
    venv = tmp_path / "venv"
    assert os.system(f"{sys.executable} -m venv --without-pip {venv}") == 0
    env = {"PATH": f"{venv}/bin:{SANDBOX_PATH}", "VIRTUAL_ENV": str(venv), "PYTHONPATH": "/testbed"}
    command = "python -c 'import sys; print(sys.prefix)'; pwd; echo out; echo err >&2; echo x > made.txt; exit 3"
    result = run_sandboxed(command, workspace, timeout=20, env=env)
    assert result.output.splitlines() == [str(venv), "/testbed", "out", "err"]
    assert (result.exit_code, result.timed_out) == (3, False)
    assert (workspace / "made.txt").read_text() == "x\n"
    assert 0 < result.duration_s < 20


def test_run_sandboxed_kills_the_whole_process_tree_at_the_timeout(workspace: Path) -> None:
    marker = "987.654321"
    result = run_sandboxed(f"echo started; (sleep {marker} &); while true; do :; done", workspace, timeout=1.0)
    assert result.timed_out and result.exit_code == 137
    assert 1.0 <= result.duration_s < 5
    assert result.output == "started\n"
    leftovers = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            leftovers += [cmdline] if marker.encode() in cmdline.read_bytes() else []
        except OSError:  # the process ended while we looked
            continue
    assert leftovers == []


def test_run_sandboxed_keeps_head_and_tail_of_runaway_output(workspace: Path) -> None:
    command = "echo first; yes | head -c 5000000; echo; echo last"
    result = run_sandboxed(command, workspace, timeout=20, max_output_bytes=1000)
    assert result.output.startswith("first\n") and result.output.endswith("last\n")
    assert "bytes of output omitted" in result.output and len(result.output) < 1100


def test_bad_inputs_are_one_line_errors(workspace: Path, tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match=r"workspace: host directory '.*missing' does not exist"):
        run_sandboxed("true", tmp_path / "missing", timeout=5)
    with pytest.raises(SandboxError, match="mount: expected a new top-level directory"):
        run_sandboxed("true", workspace, timeout=5, mount="/usr/src")
    with pytest.raises(SandboxError, match="ro_binds: host path '/no/such/dir' does not exist"):
        run_sandboxed("true", workspace, timeout=5, ro_binds=["/no/such/dir"])
    with pytest.raises(ValidationError, match="startup_timeouts"):
        TypeAdapter(DeploymentConfig).validate_python({"type": "sandbox", "startup_timeouts": 3})
    deployment = SandboxDeploymentConfig().get_deployment(workspace=workspace)
    with pytest.raises(DeploymentNotStartedError):
        deployment.runtime  # noqa: B018 - the property raises before start


def test_modal_config_reaches_swerex_modal_deployment(tmp_path: Path) -> None:
    if os.environ.get("MODAL_TOKEN_ID") or (Path.home() / ".modal.toml").exists():
        pytest.skip("modal credentials are configured here; the test must not create a modal app")
    import modal.exception

    from sweagent.environment.problem import LocalRepoProblem
    from sweagent.environment.swe_env import EnvironmentConfig

    config = TypeAdapter(DeploymentConfig).validate_python({"type": "modal", "image": "python:3.11"})
    assert isinstance(config, ModalDeploymentConfig)
    # Without credentials swerex's ModalDeployment stops at modal's login check, before any network traffic.
    with pytest.raises(modal.exception.AuthError) as excinfo:
        config.for_problem(LocalRepoProblem(tmp_path, "fix it"), EnvironmentConfig(deployment=config))
    assert any(Path(entry.path).as_posix().endswith("swerex/deployment/modal.py") for entry in excinfo.traceback)


def test_a_workspace_built_while_the_server_starts_is_the_sandbox_users_and_not_counted_as_written(tmp_path: Path) -> None:
    from sweagent.environment.problem import LocalRepoProblem
    from sweagent.environment.sandbox.limits import SandboxLimits
    from sweagent.environment.swe_env import EnvironmentConfig, SWEEnv

    repo = tmp_path / "big"
    repo.mkdir()
    (repo / "data.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # more than the disk limit below
    config = EnvironmentConfig(deployment=SandboxDeploymentConfig(limits=SandboxLimits(disk_mb=2)))
    env = SWEEnv(config, LocalRepoProblem(repo, "task", "big"))
    try:
        env.start()
        time.sleep(0.6)  # a disk check runs while a call is pending or after a writing one
        owner = str(os.geteuid() or SANDBOX_UID)
        assert env.communicate("ls; stat -c %u data.bin .git; touch new.txt && echo ok").split() == ["data.bin", owner, owner, "ok"]
        with pytest.raises(SandboxProcessError, match="disk limit"):  # what commands write still counts
            env.communicate("for i in 1 2 3; do head -c 1000000 /dev/urandom > more$i.bin; done; sleep 5")
    finally:
        env.close()


def test_a_finished_workspace_is_removed_unless_kept(tmp_path: Path) -> None:
    from sweagent.environment.problem import LocalRepoProblem
    from sweagent.environment.swe_env import EnvironmentConfig, SWEEnv

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.txt").write_text("a\n")
    for keep, root in ((False, tmp_path / "scratch"), (True, tmp_path / "kept")):
        env = SWEEnv(EnvironmentConfig(workspace_root=root, keep_workspace=keep), LocalRepoProblem(repo, "task", "local"))
        try:
            env.start()
            assert env.communicate("cat a.txt").strip() == "a"
        finally:
            env.close()
        deadline = time.monotonic() + 30  # the removal queued at stop runs on a background thread
        while ((workspaces := _existing(root, "**/repo/a.txt")) is None or (workspaces and not keep)) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workspaces) == (1 if keep else 0), workspaces


def _existing(root: Path, pattern: str) -> list[Path] | None:
    """The matches, or None while a folder vanishes under the walk (the remover deletes as we look)."""
    try:
        return list(root.glob(pattern))
    except FileNotFoundError:
        return None
