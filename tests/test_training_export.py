"""A trained model leaves train_sft.sh as GGUF written by llama.cpp's own converter, is registered by name, and
`sweagent serve-local` serves it by that name through llama.cpp behind the OpenAI API."""

from __future__ import annotations

import json
import random
import subprocess
import urllib.request
from pathlib import Path

import pytest

from oec.sft.cli import main as convert_main
from oec.sft.prompt import load_student_prompt
from oec.sft.synthetic import random_oec_trajectory, write_trajectory
from oec.training.cli import main
from sweagent.utils.cache import cache_root

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:
    """A cache of our own (registry, server state), sharing the downloads of the real one (weights, sdists, tools)."""
    shared, private = cache_root(), tmp_path / "cache"
    (private / "models").mkdir(parents=True)
    for name in ("sdists", "tools", "tokenizers"):
        (shared / name).mkdir(parents=True, exist_ok=True)
        (private / name).symlink_to(shared / name)
    for weights in (shared / "models").glob("*.gguf"):
        (private / "models" / weights.name).symlink_to(weights)
    monkeypatch.setenv("OEC_CACHE", str(private))
    return private


@pytest.mark.slow
def test_a_fully_fine_tuned_tiny_model_is_served_by_name(tmp_path, private_cache):
    from oec.training.model import _student_gguf, gguf_tokenizer_folder
    from sweagent.local_models.server import ensure_server, stop_server

    tokenizer = gguf_tokenizer_folder(_student_gguf())
    rng, commands = random.Random(1), load_student_prompt().commands
    write_trajectory(tmp_path / "run", tmp_path / "eval", "pkg__a", random_oec_trajectory("pkg__a", 4, 2, rng, commands), True)
    data = tmp_path / "sft.jsonl"
    assert convert_main(["--runs", str(tmp_path / "run"), "--evals", str(tmp_path / "eval"), "--output", str(data),
                         "--val_fraction", "0", "--quiet"]) == 0
    out = tmp_path / "train"
    assert main(["--data", str(data), "--model", "tiny", "--finetuning", "full", "--output_dir", str(out), "--max_steps", "1",
                 "--tokenizer", str(tokenizer), "--export.serve_name", "tiny_export", "--progress", "false"]) == 0
    serving = json.loads((out / "manifest.json").read_text())["serving"]
    assert serving["model_path"] == str(out / "gguf" / "model.gguf") and serving["lora_path"] is None
    assert json.loads((private_cache / "models" / "trained" / "tiny_export.json").read_text())["trained_in"] == str(out)
    try:
        info = ensure_server("tiny_export", ctx=2048, threads=1)
        request = urllib.request.Request(f"{info.api_base}/chat/completions", method="POST",
                                         headers={"Content-Type": "application/json"},
                                         data=json.dumps({"model": "tiny_export", "max_tokens": 4,
                                                          "messages": [{"role": "user", "content": "ls"}]}).encode())
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=60) as response:
            reply = json.loads(response.read())
        assert reply["model"] == "tiny_export" and reply["usage"]["completion_tokens"] >= 1
        status = subprocess.run([str(REPO / ".venv/bin/sweagent"), "serve-local", "status"], capture_output=True, text=True)
        assert "tiny_export running" in status.stdout
    finally:
        stop_server("tiny_export")
    unknown = subprocess.run([str(REPO / ".venv/bin/sweagent"), "serve-local", "start", "nobody_r9"], capture_output=True,
                             text=True)
    assert unknown.returncode == 2 and "or a trained model (tiny_export)" in unknown.stderr
