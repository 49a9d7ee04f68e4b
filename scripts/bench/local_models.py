"""Benchmark the local model servers: load time, prompt tokens/s and generated tokens/s per model.

Each model gets a fresh server (its own state dir, so a running `serve-local` server is neither reused nor
disturbed), a cold agent-sized prompt built from real Python source, and a follow-up turn that shows what prompt
caching saves. Throughput numbers come from llama.cpp's own timings in each response.

    python scripts/bench/local_models.py [--models student expert] [--prompt_tokens 3000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import inspect
import json.decoder
import os
import statistics
import tempfile
import time
from pathlib import Path

from openai import OpenAI
from rich.console import Console
from rich.table import Table

from sweagent.local_models import MODELS, ensure_server, ensure_weights, stop_server
from sweagent.utils.files import write_json_atomic

SYSTEM = "You are a careful software engineer. Answer concisely."
COLUMNS = (
    "model", "load s", "prompt tok", "prompt tok/s", "gen tok", "gen tok/s", "cached/new tok", "follow-up ms",
)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--prompt_tokens", type=int, default=3000, help="approximate size of the cold prompt")
    parser.add_argument("--max_tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="cold prompts per model (results are averaged)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()

    console = Console(width=max(Console().width, 110))
    results = {}
    for name in args.models:
        console.print(f"benchmarking {name} ({MODELS[name].model_name}) ...")
        results[name] = bench_model(name, args.prompt_tokens, args.max_tokens, args.repeats)

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
    # Throughput on a shared CPU depends on what else runs: print the context the figures were taken in.
    console.print(f"{os.cpu_count()} cores, 1-min load average {os.getloadavg()[0]:.1f} at the end; "
                  + ", ".join(f"{name} = {MODELS[name].model_name}" for name in results))
    if args.out:
        write_json_atomic(args.out, results)


if __name__ == "__main__":
    main()
