"""`sweagent serve-local start|stop|status|weights`: manage the local model servers from the shell."""

from __future__ import annotations

import argparse
import signal
import sys

from sweagent.local_models.catalog import MODELS, LocalModelError, get_spec
from sweagent.local_models.server import ServerStatus, ensure_server, server_status, stop_server
from sweagent.local_models.trained import trained_names
from sweagent.local_models.weights import ensure_weights
from sweagent.utils.errors import OECError

_TARGETS = [*MODELS, "all"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sweagent serve-local",
        description="Serve the local GGUF models behind an OpenAI-compatible API on 127.0.0.1. "
        "Weights and server state live under $OEC_CACHE (default ~/.cache/oec).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a server unless a healthy one runs; prints its API base")
    start.add_argument("target", nargs="?", default="student",
                       help=f"{', '.join(_TARGETS)}, or the name of a trained student (train_sft.sh --export.serve_name)")
    start.add_argument("--port", type=int, help="fixed port (default: the model's usual port, else any free)")
    start.add_argument("--model_path", help="serve your own GGUF instead of the pinned weights")
    start.add_argument("--ctx", type=int, help="context window in tokens (default 32768)")
    start.add_argument("--threads", type=int, help="CPU threads (default: every core this process may use)")
    start.add_argument("--parallel", type=int, help="requests served at once, e.g. one per rollout worker (default 1)")
    start.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the server to be healthy")
    start.add_argument("--export", action="store_true", help="for scripts: print OEC_<NAME>_API_BASE=<url> lines "
                       "(what the local configs read), and the usual report on stderr")
    stop = commands.add_parser("stop", help="stop servers started by serve-local")
    stop.add_argument("target", nargs="?", default="all", help=f"{', '.join(_TARGETS)}, or a trained student's name")
    stop.add_argument("--owner_pid", type=int, help="only servers started for this process (a script's exit cleanup)")
    commands.add_parser("status", help="print running/dead/stopped and the API base of each server")
    commands.add_parser("used", help="for scripts: the servers a run config uses, on one line (what "
                               "generate_oec.sh starts); takes run-batch's --config FILE and --dotted.key VALUE options")

    weights = commands.add_parser("weights", help="download, join and verify weights without serving them")
    weights.add_argument("target", nargs="?", default="all", choices=_TARGETS)
    weights.add_argument("--rehash", action="store_true", help="re-hash the cached file even if its stamp matches")
    return parser


def _names(target: str, trained: bool = False) -> list[str]:
    """`all`: the pinned models, and with `trained` the registered trained students too."""
    if target != "all":
        return [target]
    return [*MODELS, *(trained_names() if trained else [])]


def _status_line(status: ServerStatus) -> str:
    if status.info is None:
        return f"{status.name:<8} {status.state}"
    info = status.info
    owner = f"  (stops with pid {info.owner_pid})" if info.owner_pid is not None else ""
    return (
        f"{status.name:<8} {status.state:<12} {info.api_base}  model {info.litellm_model}  pid {info.pid}  "
        f"{info.model_path}{owner}"
    )


def _run(args: argparse.Namespace) -> int:
    if args.command == "start":
        names = _names(args.target)
        if len(names) > 1 and (args.port or args.model_path):
            raise LocalModelError("--port and --model_path apply to one model: name student or expert, not all")
        # SIGTERM unwinds like Ctrl-C, so a server still starting is killed (see _spawn) rather than left unrecorded.
        previous = signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
        try:
            for name in names:
                info = ensure_server(
                    name, port=args.port, model_path=args.model_path, ctx=args.ctx, threads=args.threads,
                    parallel=args.parallel, timeout=args.timeout,
                )
                how = "started" if info.started_by_us else "already running"
                report = f"{name:<8} {how:<15} {info.api_base}  model {info.litellm_model}  pid {info.pid}"
                print(report, file=sys.stderr if args.export else sys.stdout)
                if args.export:  # the OpenAI endpoint, and the server's root for litellm's anthropic/ provider
                    print(f"OEC_{name.upper()}_API_BASE={info.api_base}")
                    print(f"OEC_{name.upper()}_ANTHROPIC_BASE={info.url}")
        finally:
            signal.signal(signal.SIGTERM, previous)
    elif args.command == "stop":
        for name in _names(args.target, trained=True):
            print(f"{name:<8} {'stopped' if stop_server(name, owner_pid=args.owner_pid) else 'was not running'}")
    elif args.command == "used":
        from sweagent.local_models.config_use import servers_used
        from sweagent.run.config_loading import build_config, parse_cli
        from sweagent.run.run_batch import RunBatchConfig

        files, overrides = parse_cli(args.run_batch_options)
        print(" ".join(servers_used(build_config(RunBatchConfig, files, overrides).model_dump(mode="json"))))
    elif args.command == "status":
        for name in _names("all", trained=True):
            print(_status_line(server_status(name)))
    else:
        for name in _names(args.target):
            print(f"{name:<8} {ensure_weights(get_spec(name), rehash=args.rehash)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "used":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.run_batch_options = extra
    try:
        return _run(args)
    except OECError as exc:  # LocalModelError, or a config error of `used`
        print(f"sweagent serve-local: {exc}", file=sys.stderr)
        return 2
