"""`sweagent serve-local start|stop|status|weights`: manage the local model servers from the shell."""

from __future__ import annotations

import argparse
import sys

from sweagent.local_models.catalog import MODELS, LocalModelError, get_spec
from sweagent.local_models.server import ServerStatus, ensure_server, server_status, stop_server
from sweagent.local_models.weights import ensure_weights

_TARGETS = [*MODELS, "all"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sweagent serve-local",
        description="Serve the local GGUF models behind an OpenAI-compatible API on 127.0.0.1. "
        "Weights and server state live under $OEC_CACHE (default ~/.cache/oec).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a server unless a healthy one runs; prints its API base")
    start.add_argument("target", nargs="?", default="student", choices=_TARGETS)
    start.add_argument("--port", type=int, help="fixed port (default: the model's usual port, else any free)")
    start.add_argument("--model_path", help="serve your own GGUF instead of the pinned weights")
    start.add_argument("--ctx", type=int, help="context window in tokens (default 32768)")
    start.add_argument("--threads", type=int, help="CPU threads (default: every core this process may use)")
    start.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the server to be healthy")
    stop = commands.add_parser("stop", help="stop servers started by serve-local")
    stop.add_argument("target", nargs="?", default="all", choices=_TARGETS)
    commands.add_parser("status", help="print running/dead/stopped and the API base of each server")
    weights = commands.add_parser("weights", help="download, join and verify weights without serving them")
    weights.add_argument("target", nargs="?", default="all", choices=_TARGETS)
    weights.add_argument("--rehash", action="store_true", help="re-hash the cached file even if its stamp matches")
    return parser


def _names(target: str) -> list[str]:
    return list(MODELS) if target == "all" else [target]


def _status_line(status: ServerStatus) -> str:
    if status.info is None:
        return f"{status.name:<8} {status.state}"
    info = status.info
    return (
        f"{status.name:<8} {status.state:<12} {info.api_base}  model {info.litellm_model}  pid {info.pid}  "
        f"{info.model_path}"
    )


def _run(args: argparse.Namespace) -> int:
    if args.command == "start":
        names = _names(args.target)
        if len(names) > 1 and (args.port or args.model_path):
            raise LocalModelError("--port and --model_path apply to one model: name student or expert, not all")
        for name in names:
            info = ensure_server(
                name, port=args.port, model_path=args.model_path, ctx=args.ctx, threads=args.threads,
                timeout=args.timeout,
            )
            how = "started" if info.started_by_us else "already running"
            print(f"{name:<8} {how:<15} {info.api_base}  model {info.litellm_model}  pid {info.pid}")
    elif args.command == "stop":
        for name in _names(args.target):
            print(f"{name:<8} {'stopped' if stop_server(name) else 'was not running'}")
    elif args.command == "status":
        for name in MODELS:
            print(_status_line(server_status(name)))
    else:
        for name in _names(args.target):
            print(f"{name:<8} {ensure_weights(get_spec(name), rehash=args.rehash)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return _run(args)
    except LocalModelError as exc:
        print(f"sweagent serve-local: {exc}", file=sys.stderr)
        return 2
