"""`python -m failure_categorization categorize|compare`: judge a run's failures, or compare two judges.

Exit codes: 0 done, 1 some trajectories ended as analysis_error (rerun the same command to retry them), 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from sweagent.utils.cli import StageParser, run_stage
from sweagent.utils.log import setup_cli_output

from failure_categorization.taxonomy import DEFAULT_TAXONOMY

PROG = "categorize_failures.sh"
LOCAL_JUDGE = "expert"
"""Local model server that judges when no --model is given."""
OUTPUT_SUBDIR = "failure_categorization"


def _parser() -> StageParser:
    parser = StageParser(
        prog=PROG,
        description="Sort failed agent trajectories into failure categories with an LLM judge, and chart them.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("categorize", prog=PROG, argument_default=argparse.SUPPRESS,
                              help="judge the failed trajectories of a run directory",
                              epilog="Every option is also a key of a --config YAML file "
                              "(failure_categorization/options.py::CategorizeOptions).")
    run.add_argument("--config", action="append", default=[], metavar="YAML", help="options as YAML, merged in order")
    where = run.add_argument_group("what to judge")
    where.add_argument("--run_dir", help="run directory with <traj_id>/<traj_id>.traj files")
    where.add_argument("--eval_dir", help="eval directory with <traj_id>/report.json (SWE-smith format)")
    where.add_argument("--instances", help="instance file (JSON/JSONL): judge only its instances, and take "
                       "repository names and problem statements from it")
    where.add_argument("--filter", help="regular expression searched in traj ids")
    where.add_argument("--limit", type=int, help="judge at most N trajectories of each exit status")
    where.add_argument("--output_dir", help=f"where results go (default: <run_dir>/{OUTPUT_SUBDIR})")
    judge = run.add_argument_group("the judge")
    judge.add_argument("--taxonomy", help=f"taxonomy YAML (default: {DEFAULT_TAXONOMY})")
    judge.add_argument("--model", help=f"litellm model name (default: the local {LOCAL_JUDGE} server)")
    judge.add_argument("--api_base", help="OpenAI-compatible base URL for --model (e.g. a vLLM server)")
    judge.add_argument("--api_key_env", help="name of the environment variable holding the API key (the key itself "
                       "never goes on the command line); by default litellm reads the provider's usual variable, "
                       "and a server given by --api_base gets a placeholder key")
    judge.add_argument("--samples", type=int, help="answers per trajectory, majority-voted (default 1)")
    judge.add_argument("--temperature", type=float, help="default 0 for one sample, 0.7 for several")
    judge.add_argument("--max_tokens", type=int, help="answer length limit (default 400)")
    judge.add_argument("--no_structured_output", action="store_true",
                       help="never send a JSON schema; ask for the category on the last line instead")
    judge.add_argument("--last_steps", type=int, help="actions/observations shown (default 5)")
    judge.add_argument("--max_problem_chars", type=int, help="default 3000")
    judge.add_argument("--max_action_chars", type=int, help="default 800")
    judge.add_argument("--max_observation_chars", type=int, help="default 1500")
    judge.add_argument("--max_tools_chars", type=int, help="default 2000")
    how = run.add_argument_group("how to run")
    how.add_argument("--num_workers", type=int, help="parallel judge requests (default: 1 locally, 4 otherwise)")
    how.add_argument("--timeout", type=float, help="seconds per judge request (default 600: a small model on a busy CPU is slow)")
    how.add_argument("--retries", type=int, help="retries per request, with backoff (default 2)")
    how.add_argument("--max_repositories", type=int, help="columns of the repository heatmap (default 30)")
    how.add_argument("--dry_run", action="store_true", help="print the prompts that would be sent, and stop")
    cmp = commands.add_parser("compare", prog=f"{PROG} compare", help="agreement and Cohen's kappa between two judges' results")
    cmp.add_argument("first", type=Path, help="failure_categories.json of one judge")
    cmp.add_argument("second", type=Path, help="failure_categories.json of the other judge")
    cmp.add_argument("--output", type=Path, help="also write the comparison as JSON here")
    return parser


def _settings(args: Any) -> Any:
    from failure_categorization.judge import JudgeSettings
    from failure_categorization.prompt import PromptLimits
    from sweagent.local_models import get_spec

    model = args.model or f"openai/{get_spec(LOCAL_JUDGE).name}"
    temperature = args.temperature if args.temperature is not None else (0.0 if args.samples == 1 else 0.7)
    return JudgeSettings(
        model=model,
        temperature=temperature,
        max_tokens=args.max_tokens,
        samples=args.samples,
        structured_output=not args.no_structured_output,
        limits=PromptLimits(
            last_steps=args.last_steps,
            max_problem_chars=args.max_problem_chars,
            max_action_chars=args.max_action_chars,
            max_observation_chars=args.max_observation_chars,
            max_tools_chars=args.max_tools_chars,
        ),
    )


def _endpoint(args: Any) -> tuple[str | None, str | None]:
    """(api_base, api_key): the local server's, started if needed, or what the user named."""
    from failure_categorization.errors import CategorizationError
    from sweagent.local_models import ensure_server
    from sweagent.utils.secrets import register_secret

    if args.model is None:
        return ensure_server(LOCAL_JUDGE).api_base, "local"
    if args.api_key_env is None:
        # An OpenAI-compatible server of one's own (vLLM, llama.cpp) wants some key, and any will do.
        return args.api_base, ("EMPTY" if args.api_base else None)
    key = os.environ.get(args.api_key_env)
    if not key:
        raise CategorizationError(f"--api_key_env: environment variable {args.api_key_env} is not set")
    register_secret(key)  # a provider error quoting it must not reach the verdicts
    return args.api_base, key


def run_categorize(args: Any, console: Any, command: list[str]) -> int:
    from failure_categorization.charts import write_charts
    from failure_categorization.judge import Judge
    from failure_categorization.report import build_results, write_readme, write_results
    from failure_categorization.runner import categorize, prompt_for, split_cases
    from failure_categorization.selection import select_failed
    from failure_categorization.taxonomy import load_taxonomy
    from sweagent.instance import load_instances

    taxonomy = load_taxonomy(args.taxonomy)
    settings = _settings(args)
    instances = None
    if args.instances is not None:
        instances = {instance.instance_id: instance for instance in load_instances(args.instances)}
    selection = select_failed(args.run_dir, args.eval_dir, instances, args.filter, args.limit)
    output_dir = args.output_dir or args.run_dir / OUTPUT_SUBDIR
    for _, reason in selection.malformed:
        console.print(f"[yellow]skipped malformed:[/yellow] {reason}", highlight=False)
    if selection.not_evaluated:
        hint = " (pass --eval_dir)" if args.eval_dir is None else ""
        console.print(f"[yellow]{len(selection.not_evaluated)} trajectories submitted a patch but have no eval report, "
                      f"so they are not judged{hint}[/yellow]")
    console.print(f"{len(selection.failed)} failed trajectories selected ({selection.resolved} resolved ones left out)")
    if args.dry_run:
        judge = Judge(settings, taxonomy)
        _, todo = split_cases(selection.failed, judge, output_dir)
        for case in todo:
            for message in prompt_for(case, judge).messages(settings.structured_output):
                print(f"===== {case.traj_id} · {message['role']} =====\n{message['content']}\n")
        console.print(f"dry run: {len(todo)} prompts would be sent to {settings.model}, "
                      f"{len(selection.failed) - len(todo)} verdicts already exist")
        return 0
    api_base, api_key = _endpoint(args)
    judge = Judge(settings, taxonomy, api_base=api_base, api_key=api_key, timeout=args.timeout, retries=args.retries)
    output_dir.mkdir(parents=True, exist_ok=True)
    workers = args.num_workers or (1 if args.model is None else 4)
    outcome = categorize(selection.failed, judge, output_dir, num_workers=workers, console=console)
    results = build_results(outcome.verdicts, selection, taxonomy, settings)
    json_path, csv_path = write_results(results, output_dir)
    charts = write_charts(results, output_dir, args.max_repositories)
    inputs = {"run directory": args.run_dir, "eval directory": args.eval_dir, "instance file": args.instances,
              "traj id filter": args.filter, "taxonomy": args.taxonomy}
    write_readme(results, output_dir, charts, command, {name: str(value) for name, value in inputs.items() if value})
    _print_summary(console, results, outcome.asked, outcome.reused)
    console.print(f"results: {json_path}\n         {csv_path}")
    if charts:
        console.print(f"charts:  {charts[0].parent}/{{{','.join(sorted({p.stem for p in charts}))}}}.{{png,pdf}}")
    if judge.structured_fallback:
        console.print(f"[yellow]the judge server rejected structured output ({judge.structured_fallback}); "
                      "categories were read from the answers' last line[/yellow]")
    if outcome.errors:
        reason = f": judge server unreachable ({judge.unreachable})" if judge.unreachable else ""
        console.print(f"[red]{outcome.errors} trajectories could not be judged (analysis_error){reason}. "
                      "Rerun the same command to retry only those.[/red]", highlight=False)
        return 1
    return 0


def _print_summary(console: Any, results: dict, asked: int, reused: int) -> None:
    from rich.table import Table

    from failure_categorization.taxonomy import ANALYSIS_ERROR

    summary = results["summary"]
    statuses = list(summary["category_by_exit_status"])
    table = Table(title=f"failure categories ({asked} asked, {reused} reused)")
    table.add_column("category", overflow="fold")
    for status in statuses:
        table.add_column(status, justify="right")
    table.add_column("total", justify="right")
    for category, total in summary["categories"].items():
        if total:
            row = [str(summary["category_by_exit_status"][s][category]) for s in statuses]
            style = "red" if category == ANALYSIS_ERROR else None
            table.add_row(category, *row, str(total), style=style)
    console.print(table)
    cost = summary["cost"]
    console.print(
        f"judge calls {cost['calls']}, tokens {cost['prompt_tokens']} in / {cost['completion_tokens']} out, "
        f"cost ${cost['cost']:.4f}; {summary['flagged']} answers outside the taxonomy (flagged)"
    )


def run_compare(args: argparse.Namespace, console: Any) -> int:
    from rich.table import Table

    from failure_categorization.compare import compare
    from sweagent.utils.files import write_json_atomic

    result = compare(args.first, args.second)
    if args.output:
        write_json_atomic(args.output, result)
    kappa = "undefined (a single category)" if result["cohen_kappa"] is None else f"{result['cohen_kappa']:.3f}"
    agreement = "n/a" if result["agreement"] is None else f"{result['agreement']:.1%}"
    console.print(
        f"{result['judges'][0]['model']} vs {result['judges'][1]['model']}: {result['compared']} trajectories compared "
        f"({result['left_out_analysis_errors']} left out for analysis errors, {result['only_in_first']} only in the "
        f"first, {result['only_in_second']} only in the second)\nagreement {agreement}, Cohen's kappa {kappa}"
    )
    table = Table(title="confusion (first judge → second judge)")
    for column in ("first", "second", "count"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for row in result["confusion"]:
        table.add_row(row["first"], row["second"], str(row["count"]))
    console.print(table)
    return 0


def _run(argv: list[str]) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    if args.command == "compare":
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return run_compare(args, console)
    from failure_categorization.options import CategorizeOptions
    from sweagent.run.config_loading import build_config, parse_cli, resolve_config_path

    given = {key: value for key, value in vars(args).items() if key not in ("command", "config")}
    _, dotted = parse_cli(extra)
    options = build_config(CategorizeOptions, [resolve_config_path(path) for path in args.config], [*given.items(), *dotted])
    return run_categorize(options, console, ["python", "-m", "failure_categorization", *argv])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        argv = ["categorize", "--help"]
    elif argv[0] not in ("categorize", "compare"):
        argv = ["categorize", *argv]  # judging is what the command is for; `compare` has to be named
    setup_cli_output()
    return run_stage(PROG, lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
