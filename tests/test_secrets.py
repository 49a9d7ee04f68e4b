"""Secrets are masked by value in every output: a real `sweagent run` in the sandbox whose key reaches it only through
`${VAR}` (a request header and the sandbox's environment), is echoed by a command, printed by the model and quoted by
the provider's 401 error; then the judge, whose provider quotes its key too. No output file, log or console line may
hold a key."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from sweagent.instance import load_instances
from sweagent.run.config_loading import build_config, redact
from sweagent.run.run_single import RunSingleConfig
from sweagent.trajectory import load_trajectory, traj_path
from sweagent.utils.secrets import MASK, MIN_SECRET_LENGTH, RedactingFilter, redact_text, register_secret
from conftest import XML_TOOLS, make_calc_repo

REPO = Path(__file__).resolve().parents[1]
DEMO_INSTANCES = REPO / "config/demo/instances.json"
DEMO_ID = load_instances(DEMO_INSTANCES)[0].instance_id


def fresh_secret() -> str:
    return secrets.token_hex(16)


# ---- the registry -----------------------------------------------------------------------------------------------


def test_secret_named_environment_variables_are_masked_and_short_values_never(monkeypatch) -> None:
    value = fresh_secret()
    monkeypatch.setenv("OEC_TEST_SERVICE_TOKEN", value)
    monkeypatch.setenv("OEC_TEST_PLAIN", fresh_secret())  # not secret-named: left alone
    monkeypatch.setenv("OEC_TEST_SHORT_KEY", "local")  # too short to be a key
    text = f"token={value} plain={os.environ['OEC_TEST_PLAIN']} local"
    assert redact_text(text) == f"token={MASK} plain={os.environ['OEC_TEST_PLAIN']} local"
    assert len("local") < MIN_SECRET_LENGTH


def test_registered_values_are_masked_raw_and_inside_json_strings() -> None:
    value = f'{fresh_secret()}"\\\u00e9'
    register_secret(value)
    for text in (value, json.dumps({"k": value}), json.dumps({"k": value}, ensure_ascii=False)):
        assert value not in redact_text(text) and json.dumps(value)[1:-1] not in redact_text(text) and MASK in redact_text(text)


def test_the_config_loader_registers_what_env_expansion_puts_into_headers_and_the_sandbox_env(tmp_path, monkeypatch) -> None:
    header, deploy, statement = fresh_secret(), fresh_secret(), fresh_secret()
    monkeypatch.setenv("OEC_TEST_HEADER", header)
    monkeypatch.setenv("OEC_TEST_DEPLOY", deploy)
    monkeypatch.setenv("OEC_TEST_STATEMENT", statement)
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump({
        "agent": {"model": {"name": "openai/x", "completion_kwargs": {"extra_headers": {"X-Token": "Bearer ${OEC_TEST_HEADER}"}}}},
        "env": {"deployment": {"type": "sandbox", "env": {"PROBE": "${OEC_TEST_DEPLOY}"}}},
        "problem_statement": "${OEC_TEST_STATEMENT}",
    }))
    dump = json.dumps(redact(build_config(RunSingleConfig, [config_file], []).model_dump(mode="json")))
    assert header not in dump and deploy not in dump
    assert statement in dump  # an ordinary field: its value is not a secret


def test_the_log_filter_masks_arguments_and_tracebacks() -> None:
    value = fresh_secret()
    register_secret(value)
    try:
        raise RuntimeError(f"provider said: bad key {value}")
    except RuntimeError:
        record = logging.getLogger("t").makeRecord("t", logging.ERROR, __file__, 1, "key %s", (value,), sys.exc_info())
    RedactingFilter().filter(record)
    assert value not in logging.Formatter().format(record) and MASK in record.getMessage()


def test_everything_a_command_prints_is_masked(tmp_path: Path) -> None:
    value = fresh_secret()
    script = ("import logging, os, sys\n"
              "from rich.console import Console\n"
              "from sweagent.utils.log import setup_cli_output\n"
              "setup_cli_output()\n"
              "key = os.environ['OEC_TEST_SERVICE_API_KEY']\n"
              "print('print', key)\n"
              "sys.stderr.write(f'stderr {key}\\n')\n"
              "Console(stderr=True).print(f'rich {key}')\n"
              "logging.basicConfig(format='%(message)s')\n"
              "logging.getLogger('x').warning('log %s', key)\n")
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "OEC_TEST_SERVICE_API_KEY": value},
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert value not in done.stdout + done.stderr
    assert done.stdout.count(MASK) == 1 and done.stderr.count(MASK) == 3


@pytest.mark.parametrize("tokenized", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_sft_rows_never_carry_a_key_from_a_trajectory_written_elsewhere(tmp_path: Path, monkeypatch, tokenized: bool) -> None:
    from oec.sft.cli import main
    from oec.sft.prompt import load_student_prompt
    from oec.sft.synthetic import StepSpec, build_trajectory
    from oec.sft.tokenized import load_tokenizer
    from sweagent.local_models.catalog import get_spec
    from sweagent.local_models.weights import ensure_weights
    from sweagent.tools.parsing import ToolCall

    value = fresh_secret()
    monkeypatch.setenv("OEC_TEST_HUB_TOKEN", value)
    specs = [StepSpec("expert", ToolCall("bash", {"command": "env | grep HUB"}), f"HUB={value}\n", "I look at the token."),
             StepSpec("expert", ToolCall("submit", {}), "", "Done.")]
    path = traj_path(tmp_path / "run", "pkg__bug-1")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(build_trajectory("pkg__bug-1", specs, load_student_prompt().commands).to_json_dict()))
    assert value in path.read_text()  # as another tool wrote it: unmasked
    output = tmp_path / "out" / "sft.jsonl"
    tokenizer = ["--tokenizer", str(ensure_weights(get_spec("student")))] if tokenized else []
    assert main(["--runs", str(tmp_path / "run"), "--no-resolved_only", "--val_fraction", "0", "--output", str(output),
                 "--quiet", *tokenizer]) == 0
    rows = output.read_text()
    assert value not in rows and f"HUB={MASK}" in rows
    if tokenized:  # binary, so masked in the rows before tokenizing, not by the text writer
        decoded = load_tokenizer(tokenizer[1]).decode(pq.read_table(output.with_suffix(".parquet")).to_pylist()[0]["input_ids"])
        assert value not in decoded and f"HUB={MASK}" in decoded


# ---- a real run and the judge -----------------------------------------------------------------------------------


class ScriptedProvider(ThreadingHTTPServer):
    """An OpenAI-compatible endpoint on 127.0.0.1: answers from `script`, then refuses with a 401 that quotes the
    credential it received, as real providers do (`Incorrect API key provided: ...`)."""

    daemon_threads = True

    def __init__(self, script: list[str]) -> None:
        super().__init__(("127.0.0.1", 0), _ProviderHandler)
        self.script = list(script)
        self.credentials: list[str] = []
        self._lock = threading.Lock()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def answer(self, credential: str) -> tuple[int, dict]:
        with self._lock:
            self.credentials.append(credential)
            if self.script:
                content = self.script.pop(0).replace("{credential}", credential)
                return 200, {"id": "c1", "object": "chat.completion", "created": 0, "model": "probe",
                             "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
                             "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}
        return 401, {"error": {"message": f"Incorrect API key provided: {credential}.", "type": "invalid_request_error",
                               "code": "invalid_api_key"}}


class _ProviderHandler(BaseHTTPRequestHandler):
    timeout = 30  # a stuck client cannot hold the test

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(min(int(self.headers.get("Content-Length", 0)), 10_000_000))
        credential = self.headers.get("X-Gateway-Token") or self.headers.get("Authorization", "").removeprefix("Bearer ")
        status, body = self.server.answer(credential)  # type: ignore[attr-defined]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def provider_factory() -> Iterator:
    servers: list[ScriptedProvider] = []

    def start(script: list[str]) -> ScriptedProvider:
        server = ScriptedProvider(script)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def loopback_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in {"http_proxy", "https_proxy", "all_proxy"}}
    return {**env, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", **extra}


def assert_nowhere(values: list[str], folder: Path, *texts: str) -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert not any(v.encode() in data for v in values), f"a secret is in {path}"
    for text in texts:
        assert not any(v in text for v in values), f"a secret is in the console output:\n{text}"


@pytest.mark.slow
@pytest.mark.parametrize("subcommand", ["run", "run-batch"])
def test_a_real_run_and_the_judge_never_write_or_print_a_key(tmp_path: Path, provider_factory, subcommand: str) -> None:
    header, deploy, judge_key = fresh_secret(), fresh_secret(), fresh_secret()
    model_answer = ("The gateway token I was given is {credential}; now I print the deployment variable.\n"
                    '<function=bash><parameter=command>echo "deploy=$PROBE_DEPLOY"</parameter></function>')
    agent_provider = provider_factory([model_answer])
    repo = make_calc_repo(tmp_path)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "agent": {
            "templates": {"system_template": "{{command_docs}}\n{{format_instructions}}"},
            "tools": XML_TOOLS,
            "model": {"name": "openai/probe", "api_base": agent_provider.api_base, "api_key": "local",
                      "max_input_tokens": 100000, "input_cost_per_token": 0, "output_cost_per_token": 0, "timeout": 30,
                      "retry": {"retries": 0},
                      "completion_kwargs": {"extra_headers": {"X-Gateway-Token": "${OEC_PROBE_HEADER}"}}},
        },
        "env": {"deployment": {"type": "sandbox", "env": {"PROBE_DEPLOY": "${OEC_PROBE_DEPLOY}"}}},
    }))
    out = tmp_path / "out"
    env = loopback_env(OEC_PROBE_HEADER=header, OEC_PROBE_DEPLOY=deploy, OEC_PROBE_JUDGE=judge_key)
    if subcommand == "run":
        traj_id, problem = "calc", ["--repo_path", str(repo), "--problem_statement", "add() subtracts"]
    else:
        traj_id, problem = DEMO_ID, ["--instances.path", str(DEMO_INSTANCES), "--instances.filter", f"^{DEMO_ID}$"]
    run = subprocess.run([sys.executable, "-m", "sweagent", subcommand, "--config", str(config), *problem, "--output_dir", str(out)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert agent_provider.credentials == [header, header]  # the header reached the provider, twice
    trajectory = load_trajectory(traj_path(out, traj_id))
    assert trajectory.info.exit_status == "exit_error"
    assert "AuthenticationError" in trajectory.info.exit_message and MASK in trajectory.info.exit_message
    assert trajectory.trajectory[0].observation.strip() == f"deploy={MASK}"  # the command did print the value
    assert MASK in trajectory.trajectory[0].thought
    assert MASK in (out / traj_id / f"{traj_id}.info.log").read_text()
    replayed = json.loads(trajectory.replay_config)
    assert replayed["agent"]["model"]["completion_kwargs"]["extra_headers"]["X-Gateway-Token"] == MASK
    assert replayed["env"]["deployment"]["env"]["PROBE_DEPLOY"] == MASK
    if subcommand == "run-batch":
        assert MASK in (out / "run_batch.config.yaml").read_text() and (out / "preds.json").is_file()

    judge_provider = provider_factory([])
    judged = subprocess.run(
        [sys.executable, "-m", "failure_categorization", "categorize", "--run_dir", str(out),
         "--model", "openai/judge", "--api_base", judge_provider.api_base, "--api_key_env", "OEC_PROBE_JUDGE",
         "--retries", "0", "--timeout", "30"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert judged.returncode == 1, judged.stderr[-3000:]  # the one trajectory ended as analysis_error
    assert judge_provider.credentials and set(judge_provider.credentials) == {judge_key}
    verdict = json.loads((out / "failure_categorization" / "verdicts" / f"{traj_id}.json").read_text())
    assert "AuthenticationError" in verdict["error"] and MASK in verdict["error"]
    csv_files = list((out / "failure_categorization").glob("*.csv"))
    assert csv_files and MASK in csv_files[0].read_text()
    assert_nowhere([header, deploy, judge_key], out, run.stdout, run.stderr, judged.stdout, judged.stderr)
