"""train_sft: the real trainer (transformers Trainer, peft LoRA) on a tiny Qwen2 with the real Qwen2.5 tokenizer from our
GGUF learns from the expert's turns only; bad input stops before any step with one line naming the file and row."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oec.sft.cli import main as convert_main
from oec.sft.prompt import load_student_prompt
from oec.sft.synthetic import StepSpec, build_trajectory, write_trajectory
from oec.sft.tokenized import IGNORE_INDEX, tokenize_row
from oec.training.cli import main
from oec.training.config import TrainConfig
from oec.training.trainer import prepare, train
from sweagent.tools.parsing import ToolCall

REPO = Path(__file__).resolve().parents[1]
COMMANDS = load_student_prompt().commands


@pytest.fixture(scope="module")
def tokenizer_dir() -> Path:
    """The Qwen2.5 tokenizer of the pinned student GGUF, as the cached folder the trainer reads (no hub)."""
    from oec.training.model import gguf_tokenizer_folder, _student_gguf

    return gguf_tokenizer_folder(_student_gguf())


def _spec(role: str, index: int, last: bool) -> StepSpec:
    call = ToolCall("submit", {}) if last else ToolCall("bash", {"command": f"grep -n 'def parse_{index}' src/pkg.py"})
    return StepSpec(role, call, "" if last else f"{index}: def parse_{index}(text):", f"I look for parse_{index}.")


def _sft_file(tmp_path: Path, roles_by_traj: dict[str, str]) -> Path:
    """Real SFT rows: synthetic trajectories (one letter per step, s student / e expert) through convert_to_sft."""
    for traj_id, roles in roles_by_traj.items():
        specs = [_spec({"s": "student", "e": "expert"}[r], i, i == len(roles) - 1) for i, r in enumerate(roles)]
        write_trajectory(tmp_path / "run", tmp_path / "eval", traj_id, build_trajectory(traj_id, specs, COMMANDS), True)
    output = tmp_path / "sft" / "oec.jsonl"
    assert convert_main(["--runs", str(tmp_path / "run"), "--evals", str(tmp_path / "eval"), "--output", str(output),
                         "--val_fraction", "0", "--quiet"]) == 0
    return output


def _config(tmp_path: Path, data: Path, tokenizer_dir: Path, **overrides) -> TrainConfig:
    return TrainConfig(data=[data], output_dir=tmp_path / "train", tokenizer=str(tokenizer_dir), progress=False,
                       **overrides)


def _batch(run, rows: list[dict]) -> dict:
    return run.trainer.data_collator([{"input_ids": ids, "labels": labels} for ids, labels in rows])


def _loss(run, batch: dict) -> float:
    import torch

    with torch.no_grad():
        return run.trainer.compute_loss(run.trainer.model, batch).item()


def test_the_loss_on_a_fixed_batch_falls_and_the_run_records_it(tmp_path, tokenizer_dir):
    data = _sft_file(tmp_path, {"pkg__a": "ssee", "pkg__b": "seee"})
    run = prepare(_config(tmp_path, data, tokenizer_dir, finetuning="full", learning_rate=3e-3, max_steps=6,
                          batch_size=2, lr_scheduler="constant"))
    fixed = _batch(run, list(zip(run.train_rows.input_ids, run.train_rows.labels)))
    before = _loss(run, fixed)
    manifest = train(run)
    after = _loss(run, fixed)
    assert after < before - 1.0, (before, after)
    losses = [entry["loss"] for entry in json.loads((tmp_path / "train" / "trainer_state.json").read_text())["log_history"]
              if "loss" in entry]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert [json.loads(line)["loss"] for line in (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()
            if "loss" in json.loads(line)] == losses
    assert manifest["train_data"]["rows"] == 2 and manifest["train_data"]["files"][0]["sha256"]
    assert manifest["train_data"]["trained_tokens"] < manifest["train_data"]["tokens"] / 2
    assert (tmp_path / "train" / "model" / "model.safetensors").is_file()


def _student_positions(tokenizer, row: dict) -> list[int]:
    """Token positions inside the row's student turns: those that become labelled when the student turns are trained."""
    unmasked = {**row, "messages": [{**m, "weight": 1} if m["role"] == "assistant" else m for m in row["messages"]]}
    _, masked_labels = tokenize_row(tokenizer, row)
    _, all_labels = tokenize_row(tokenizer, unmasked)
    return [i for i, (a, b) in enumerate(zip(masked_labels, all_labels)) if a == IGNORE_INDEX and b != IGNORE_INDEX]


def _gradients(run, batch: dict) -> dict:
    model = run.trainer.model
    model.zero_grad()
    run.trainer.compute_loss(model, batch).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_student_turns_contribute_nothing_to_the_gradient(tmp_path, tokenizer_dir):
    import torch

    # An expert window followed by the student again: nothing trained comes after the student's turns.
    data = _sft_file(tmp_path, {"pkg__w": "eess"})
    run = prepare(_config(tmp_path, data, tokenizer_dir, finetuning="full"))
    row = json.loads(data.read_text().splitlines()[0])
    ids, labels = run.train_rows.input_ids[0], run.train_rows.labels[0]
    student = _student_positions(run.tokenizer, row)
    assert len(student) > 20 and max(student) > max(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
    other = list(ids)
    for position in student:
        other[position] = (other[position] + 1000) % len(run.tokenizer)
    first, second = _gradients(run, _batch(run, [(ids, labels)])), _gradients(run, _batch(run, [(other, labels)]))
    assert first.keys() == second.keys() and len(first) > 10
    assert all(torch.equal(first[name], second[name]) for name in first)
    # Teeth: once the student's tokens are trained, the same change does move the gradient.
    trained = [token if i in set(student) else label for i, (token, label) in enumerate(zip(ids, labels))]
    retrained = [token if i in set(student) else label for i, (token, label) in enumerate(zip(other, labels))]
    third, fourth = _gradients(run, _batch(run, [(ids, trained)])), _gradients(run, _batch(run, [(other, retrained)]))
    assert not all(torch.equal(third[name], fourth[name]) for name in third)


def test_the_loss_is_the_mean_over_expert_tokens_and_packing_keeps_rows_apart(tmp_path, tokenizer_dir):
    import torch

    data = _sft_file(tmp_path, {"pkg__a": "sssee", "pkg__b": "see"})
    run = prepare(_config(tmp_path, data, tokenizer_dir, packing=True, max_seq_len=8192))
    rows = list(zip(run.train_rows.input_ids, run.train_rows.labels))
    model = run.trainer.model
    with torch.no_grad():
        total, count = 0.0, 0
        for ids, labels in rows:  # the plain model's logits at every position, NLL at the labelled ones
            logits = model(input_ids=torch.tensor([ids])).logits[0, :-1]
            targets = torch.tensor(labels[1:])
            total += torch.nn.functional.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum").item()
            count += int((targets != IGNORE_INDEX).sum())
    expected = total / count
    assert _loss(run, _batch(run, rows)) == pytest.approx(expected, rel=1e-5)
    packed = run.trainer.train_dataset
    assert len(packed) == 1 and "position_ids" in packed[0]
    assert _loss(run, run.trainer.data_collator(packed)) == pytest.approx(expected, rel=1e-5)


def test_the_smoke_run_anyone_can_start(tmp_path, tokenizer_dir, capsys):
    data = _sft_file(tmp_path, {"pkg__a": "see"})
    out = tmp_path / "smoke"
    assert main(["--data", str(data), "--model", "tiny", "--output_dir", str(out), "--max_steps", "2",
                 "--tokenizer", str(tokenizer_dir), "--progress", "false"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["finetuning"] == "lora" and manifest["steps"] == 2 and len(manifest["losses"]) == 2
    assert manifest["model"]["trainable_parameters"] < manifest["model"]["parameters"] / 2
    assert (out / "model" / "adapter_model.safetensors").is_file() and (out / "model" / "adapter_config.json").is_file()
    # What llama.cpp's adapter converter reads of the base: its config, naming the architecture.
    assert json.loads((out / "base_config" / "config.json").read_text())["architectures"] == ["Qwen2ForCausalLM"]
    assert "trained 2 steps on 1 rows" in capsys.readouterr().err
    usage = subprocess.run([str(REPO / "train_sft.sh"), "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "--model tiny" in usage.stdout


# ---- bad input: one line naming the file and row, exit status 2, before any step --------------------------------


def _error(capsys, argv: list[str]) -> str:
    """The CLI's error line (library progress bars, like loading weights, may come before it)."""
    capsys.readouterr()
    assert main([*argv, "--progress", "false"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("train_sft:")]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0]) and "Traceback" not in err
    return lines[0]


def test_a_file_without_trained_tokens_is_refused(tmp_path, tokenizer_dir, capsys):
    data = _sft_file(tmp_path, {"pkg__a": "see", "pkg__b": "ssee"})
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    for row in rows:
        for message in row["messages"]:
            message["weight"] = 0 if message["role"] == "assistant" else message.get("weight")
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    err = _error(capsys, ["--data", str(data), "--output_dir", str(tmp_path / "t"), "--tokenizer", str(tokenizer_dir)])
    assert f"{data}: no trained tokens in any of its 2 rows (first: {data} row 1 (pkg__a))" in err


def test_a_row_longer_than_max_seq_len_is_refused_by_file_row_and_traj_id(tmp_path, tokenizer_dir, capsys):
    from oec.sft.tokenized import load_tokenizer

    data = _sft_file(tmp_path, {"pkg__a": "see", "pkg__b": "sseeeeee"})
    base = ["--data", str(data), "--output_dir", str(tmp_path / "t"), "--tokenizer", str(tokenizer_dir)]
    short, long = (len(tokenize_row(load_tokenizer(tokenizer_dir), json.loads(line))[0])
                   for line in data.read_text().splitlines())
    err = _error(capsys, [*base, "--max_seq_len", str(short)])
    assert f"{data} row 2 (pkg__b): {long} tokens, longer than max_seq_len {short}" in err
    assert "longer than the model's context (32768)" in _error(capsys, [*base, "--max_seq_len", "40000"])


def test_a_tokenizer_that_does_not_match_the_model_is_refused(tmp_path, tokenizer_dir, capsys):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    data = _sft_file(tmp_path, {"pkg__a": "see"})
    run = prepare(_config(tmp_path, data, tokenizer_dir, finetuning="full", max_steps=1))
    run.trainer.save_model(str(tmp_path / "tiny"))
    run.tokenizer.save_pretrained(str(tmp_path / "tiny"))
    words = Tokenizer(models.WordLevel({"<unk>": 0, "a": 1, "b": 2}, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    other = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="<unk>", eos_token="<unk>",
                                    chat_template="{% for m in messages %}{{ m.content }}{% endfor %}")
    other.save_pretrained(str(tmp_path / "other"))
    err = _error(capsys, ["--data", str(data), "--output_dir", str(tmp_path / "t"), "--model", str(tmp_path / "tiny"),
                          "--tokenizer", str(tmp_path / "other"), "--finetuning", "full"])
    assert f"{tmp_path / 'other'} has another vocabulary than the model's own tokenizer" in err
    table = pa.table({"traj_id": ["pkg__x", "pkg__y"], "input_ids": [[1, 2, 3], [1, 999999, 3]],
                      "labels": [[-100, 2, 3], [-100, 999999, 3]]})
    pq.write_table(table, tmp_path / "foreign.parquet")
    err = _error(capsys, ["--data", str(tmp_path / "foreign.parquet"), "--output_dir", str(tmp_path / "t"),
                          "--tokenizer", str(tokenizer_dir)])
    assert f"{tmp_path / 'foreign.parquet'} row 2 (pkg__y): token id 999999 is outside the model's vocabulary" in err


def test_config_mistakes_are_one_line_naming_the_key(tmp_path, capsys):
    assert "key 'lr': unknown key" in _error(capsys, ["--data", "x.jsonl", "--output_dir", str(tmp_path), "--lr", "1"])
    assert "x.jsonl: SFT file does not exist (key 'data')" in _error(capsys, ["--data", "x.jsonl", "--output_dir", str(tmp_path)])
    (tmp_path / "sft.jsonl").write_text("{}\n")
    assert "key 'model': /nowhere/m.gguf does not exist" in _error(
        capsys, ["--data", str(tmp_path / "sft.jsonl"), "--output_dir", str(tmp_path), "--model", "/nowhere/m.gguf"])
