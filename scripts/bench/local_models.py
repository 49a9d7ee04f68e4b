"""Benchmark the local model servers: load time, prompt tokens/s and generated tokens/s per model, and a real
rollout's steps replayed before/after the serving changes.

Each model gets a fresh server (its own state dir, so a running `serve-local` server is neither reused nor
disturbed), a cold agent-sized prompt built from real Python source, and a follow-up turn that shows what prompt
caching saves. With `--traj`, the queries a real rollout sent (every step's full prompt, from the .traj) are sent
again to the student server as it was served before (one slot, prefix reuse only) and as it is now (a slot per
worker, cached chunks shifted into place), by 1 and by 2 workers at once: prompt and generation tokens/s, the share
of prompt tokens taken from the cache, and the mean latency per step. Figures come from llama.cpp's own timings.

    python scripts/bench/local_models.py [--models student expert] [--prompt_tokens 3000] [--repeats 2] [--traj X.traj]
"""

from __future__ import annotations

import argparse
import inspect
import json.decoder
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from openai import OpenAI
from rich.console import Console
from rich.table import Table

from sweagent.local_models import MODELS, ensure_server, ensure_weights, stop_server
from sweagent.trajectory import load_trajectory
from sweagent.utils.files import write_json_atomic

SYSTEM = "You are a careful software engineer. Answer concisely."
COLUMNS = (
    "model", "load s", "prompt tok", "prompt tok/s", "gen tok", "gen tok/s", "cached/new tok", "follow-up ms",
)
SERVING = {"before (1 slot, prefix reuse)": {"parallel": 1, "cache_reuse": 0},
           "after (slot per worker, chunk reuse)": {"parallel": 2, "cache_reuse": 256}}
REPLAY_COLUMNS = ("serving", "workers", "steps", "prompt tok/s", "gen tok/s", "cached share", "s per step")


def _prompt(run: int, prompt_tokens: int) -> str:
    """Real code as filler (about 4 characters per token), made unique per run so no run hits the prompt cache."""
    source = inspect.getsource(json.decoder) * 8
    return f"Review #{run}. Summarise what this module does.\n\n```python\n{source[: prompt_tokens * 4]}\n```"


def _chat(client: OpenAI, alias: str, messages: list[dict[str, str]], max_tokens: int) -> tuple[str, dict]:
    reply = client.chat.completions.create(model=alias, messages=messages, max_tokens=max_tokens, temperature=0)
    return reply.choices[0].message.content or "", reply.model_extra["timings"]


def bench_model(name: str, prompt_tokens: int, max_tokens: int, repeats: int) -> dict[str, float]:
    ensure_weights(MODELS[name])  # download/join outside the timed load
    with tempfile.TemporaryDirectory(prefix="oec-bench-") as state_dir:
        started = time.perf_counter()
        info = ensure_server(name, state_dir=Path(state_dir))
        load_s = time.perf_counter() - started
        try:
            client = OpenAI(base_url=info.api_base, api_key="local")
            cold, follow = [], []
            for run in range(repeats):
                prompt = _prompt(run, prompt_tokens)
                messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
                answer, timings = _chat(client, info.model_alias, messages, max_tokens)
                cold.append(timings)
                messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": "Now in one line."}]
                follow.append(_chat(client, info.model_alias, messages, max_tokens)[1])
        finally:
            stop_server(name, state_dir=Path(state_dir))
    return {
        "load_s": load_s,
        "prompt_tokens": statistics.mean(t["prompt_n"] for t in cold),
        "prompt_tok_per_s": statistics.mean(t["prompt_per_second"] for t in cold),
        "generated_tokens": statistics.mean(t["predicted_n"] for t in cold),
        "gen_tok_per_s": statistics.mean(t["predicted_per_second"] for t in cold),
        "followup_cached_tokens": statistics.mean(t["cache_n"] for t in follow),
        "followup_new_prompt_tokens": statistics.mean(t["prompt_n"] for t in follow),
        "followup_prompt_ms": statistics.mean(t["prompt_ms"] for t in follow),
    }


def _step_queries(traj: Path) -> list[list[dict[str, Any]]]:
    """The messages each step of a real rollout sent, tool calls flattened to text (every server reads that)."""
    queries = []
    for step in load_trajectory(traj).trajectory:
        messages = []
        for message in step.query:
            text = message.get("content") or ""
            if not isinstance(text, str):
                text = json.dumps(text)
            if message.get("tool_calls"):
                text += "\n" + json.dumps(message["tool_calls"])
            role = "user" if message.get("role") == "tool" else message.get("role", "user")
            messages.append({"role": role, "content": text})
        queries.append(messages)
    return queries


def _replay(client: OpenAI, alias: str, queries: list[list[dict[str, Any]]], worker: int, max_tokens: int,
            timings: list[dict], latencies: list[float]) -> None:
    for messages in queries:
        # Each worker is its own rollout: its own first line, so workers share no more than real rollouts would.
        own = [{**messages[0], "content": f"[rollout {worker}] " + messages[0]["content"]}, *messages[1:]]
        started = time.perf_counter()
        timings.append(_chat(client, alias, own, max_tokens)[1])
        latencies.append(time.perf_counter() - started)


def bench_replay(traj: Path, max_tokens: int) -> list[dict[str, Any]]:
    queries = _step_queries(traj)
    rows = []
    for label, serving in SERVING.items():
        with tempfile.TemporaryDirectory(prefix="oec-bench-") as state_dir:
            info = ensure_server("student", state_dir=Path(state_dir), **serving)
            try:
                client = OpenAI(base_url=info.api_base, api_key="local", timeout=1800)
                for workers in (1, 2):
                    timings: list[dict] = []
                    latencies: list[float] = []
                    threads = [threading.Thread(target=_replay, args=(client, info.model_alias, queries, workers * 10 + w,
                                                                      max_tokens, timings, latencies))
                               for w in range(workers)]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                    cached = sum(t["cache_n"] for t in timings)
                    new = sum(t["prompt_n"] for t in timings)
                    rows.append({
                        "serving": label, "workers": workers, "steps": len(latencies),
                        "prompt_tok_per_s": new / (sum(t["prompt_ms"] for t in timings) / 1000),
                        "gen_tok_per_s": sum(t["predicted_n"] for t in timings) / (sum(t["predicted_ms"] for t in timings) / 1000),
                        "cached_share": cached / max(cached + new, 1),
                        "s_per_step": statistics.mean(latencies),
                    })
            finally:
                stop_server("student", state_dir=Path(state_dir))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS), help="none: only the replay")
    parser.add_argument("--prompt_tokens", type=int, default=3000, help="approximate size of the cold prompt")
    parser.add_argument("--max_tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="cold prompts per model (results are averaged)")
    parser.add_argument("--traj", type=Path, help="a real rollout's .traj whose step queries are replayed before/after")
    parser.add_argument("--replay_max_tokens", type=int, default=64, help="tokens generated per replayed step")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()

    console = Console(width=max(Console().width, 110))
    results: dict[str, Any] = {}
    for name in args.models:
        console.print(f"benchmarking {name} ({MODELS[name].model_name}) ...")
        results[name] = bench_model(name, args.prompt_tokens, args.max_tokens, args.repeats)

    if results:
        table = Table(title="local model servers (llama.cpp via xllamacpp, CPU)")
        for column in COLUMNS:
            table.add_column(column, justify="right")
        for name, r in results.items():
            table.add_row(
                name, f"{r['load_s']:.1f}", f"{r['prompt_tokens']:.0f}", f"{r['prompt_tok_per_s']:.0f}",
                f"{r['generated_tokens']:.0f}", f"{r['gen_tok_per_s']:.1f}",
                f"{r['followup_cached_tokens']:.0f}/{r['followup_new_prompt_tokens']:.0f}",
                f"{r['followup_prompt_ms']:.0f}",
            )
        console.print(table)
    if args.traj:
        console.print(f"replaying the {len(_step_queries(args.traj))} steps of {args.traj} on the student server ...")
        results["replay"] = bench_replay(args.traj, args.replay_max_tokens)
        replay = Table(title="a real rollout's steps replayed (student server)")
        for column in REPLAY_COLUMNS:
            replay.add_column(column, justify="right")
        for r in results["replay"]:
            replay.add_row(r["serving"], str(r["workers"]), str(r["steps"]), f"{r['prompt_tok_per_s']:.0f}",
                           f"{r['gen_tok_per_s']:.1f}", f"{r['cached_share']:.0%}", f"{r['s_per_step']:.1f}")
        console.print(replay)
    # Throughput on a shared CPU depends on what else runs: print the context the figures were taken in.
    console.print(f"{os.cpu_count()} cores, 1-min load average {os.getloadavg()[0]:.1f} at the end; "
                  + ", ".join(f"{name} = {MODELS[name].model_name}" for name in dict.fromkeys([*results, "student"]) if name in MODELS))
    if args.out:
        write_json_atomic(args.out, results)


if __name__ == "__main__":
    main()
