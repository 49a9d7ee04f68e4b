"""`sweagent <subcommand> ...`: dispatches to the module that owns each subcommand (each exposes `main(argv)`)."""

from __future__ import annotations

import importlib
import sys

from sweagent.utils.log import setup_cli_output

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("sweagent.run.run_single", "run the agent on one instance"),
    "run-batch": ("sweagent.run.run_batch", "run the agent on many instances (several rollouts each)"),
    "merge-preds": ("sweagent.run.merge_preds", "merge the .pred files of run directories into preds.json"),
    "serve-local": ("sweagent.local_models.cli", "start, stop or inspect the local GGUF model servers"),
}


def _usage() -> str:
    lines = ["usage: sweagent <subcommand> [options]", "", "subcommands:"]
    lines += [f"  {name:<12} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"sweagent: unknown subcommand '{name}'\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    setup_cli_output()
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
