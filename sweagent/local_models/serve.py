"""The server process: llama.cpp (through xllamacpp) serving one GGUF behind OpenAI- and Anthropic-compatible APIs.

`server.py` spawns this module as its own process, so the CLI that started it can exit and `stop` can end it.
It writes a ready file with its URL (the port may be kernel-chosen) once the model is loaded and listening, then sleeps until
SIGTERM. Given an owner (`--owner_pid`), it also stops when that process exits, however it ends (`kill -9` included):
a pidfd of the owner becomes readable when the owner is gone, and nothing has to poll.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import threading
from pathlib import Path
from typing import NoReturn

import xllamacpp

from sweagent.local_models.catalog import HOST
from sweagent.local_models.server import CACHE_REUSE_CHUNK, _pid_start_ticks
from sweagent.utils.files import write_json_atomic

PROMPT_CACHE_RAM_MIB = 2048
"""llama.cpp keeps evicted prompt prefixes in RAM (8 GiB by default); two servers must share 24 GiB with the agents."""


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sweagent.local_models.serve", description=__doc__)
    parser.add_argument("--name", required=True, help="role of the model (student or expert), for the logs")
    parser.add_argument("--alias", required=True, help="model id the API reports and accepts")
    parser.add_argument("--model_path", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int, help="0 lets the kernel pick a free port")
    parser.add_argument("--ctx", required=True, type=int)
    parser.add_argument("--threads", required=True, type=int)
    parser.add_argument("--parallel", type=int, default=1, help="requests served at once (one slot each, ctx tokens each)")
    parser.add_argument("--cache_reuse", type=int, default=CACHE_REUSE_CHUNK,
                        help="smallest cached chunk shifted into place when the prompt changed before it (0: off)")
    parser.add_argument("--chat_template", type=Path, help="Jinja chat template to use instead of the GGUF's own")
    parser.add_argument("--ready_file", required=True, type=Path)
    parser.add_argument("--lora", type=Path, help="a GGUF LoRA adapter to apply on top of the model (a trained student)")
    parser.add_argument("--owner_pid", type=int, help="stop when this process exits")
    parser.add_argument("--owner_start_ticks", type=int, help="kernel start time of --owner_pid (tells a recycled PID)")
    return parser.parse_args(argv)


def _stop_when_owner_exits(pid: int, start_ticks: int) -> None:
    """Wait for the owner to exit, then SIGTERM ourselves (the main thread's sigwait takes it)."""
    try:
        owner = os.pidfd_open(pid)
        # Checked once the pidfd pins the process: a PID recycled before pidfd_open is not our owner.
        if _pid_start_ticks(pid) == start_ticks:
            select.select([owner], [], [])
    except ProcessLookupError:
        pass
    print(f"[serve-local] owner pid {pid} has exited", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> NoReturn:
    args = _parse(sys.argv[1:] if argv is None else argv)
    # Block the stop signals before llama.cpp starts its threads, so only our sigwait below receives them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    if args.owner_pid is not None:
        # Started before the model loads, so an owner that dies meanwhile is noticed too.
        threading.Thread(
            target=_stop_when_owner_exits, args=(args.owner_pid, args.owner_start_ticks), name="owner", daemon=True
        ).start()

    params = xllamacpp.CommonParams()
    params.model.path = str(args.model_path)
    params.model_alias = {args.alias}
    if args.lora is not None:
        params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(str(args.lora), 1.0)]
    params.hostnames = [HOST]
    params.port = args.port
    # Every slot gets the whole window: llama.cpp splits n_ctx among the slots.
    params.n_ctx = args.ctx * args.parallel
    params.n_parallel = args.parallel
    if args.chat_template is not None:
        params.chat_template = args.chat_template.read_text(encoding="utf-8")
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.cache_prompt = True
    params.n_cache_reuse = args.cache_reuse
    params.cache_ram_mib = PROMPT_CACHE_RAM_MIB
    params.ui = False
    server = xllamacpp.Server(params)  # returns once the model is loaded and the HTTP server listens

    address = server.listening_address
    write_json_atomic(args.ready_file, {"url": address})
    print(f"[serve-local] {args.name} ready at {address} (alias {args.alias})", flush=True)
    received = signal.sigwait(stop_signals)
    print(f"[serve-local] {args.name} stopping on {signal.Signals(received).name}", flush=True)
    # Nothing to save, and llama.cpp's orderly shutdown first finishes the request in progress (a long prompt on a busy
    # CPU takes minutes): leave at once, the kernel frees the model and the port.
    os._exit(0)


if __name__ == "__main__":
    main()
