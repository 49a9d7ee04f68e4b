"""The conversion from run and eval dirs to SFT files, with every dropped trajectory accounted for.

Outputs, for `--output OUT.jsonl`: `OUT.jsonl` (train rows), `OUT.val.jsonl` (validation rows), `OUT.summary.json`
(counts and lists of everything dropped or odd), and with a tokenizer `OUT.parquet` / `OUT.val.parquet`. Every
file is written atomically and depends only on the inputs and options, so a rerun gives identical bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich.progress import track

from sweagent.instance import load_instances
from sweagent.tools.parsing import FormatError
from sweagent.trajectory import TrajectoryError, load_trajectory
from sweagent.utils.files import write_json_atomic, write_text_atomic
from sweagent.utils.secrets import redact_data

from oec.sft.collect import Candidate, collect
from oec.sft.errors import SFTError
from oec.sft.options import ConvertOptions
from oec.sft.prompt import RecordedPrompts, StudentPrompt, load_student_prompt, opening_mismatch, recorded_working_dir
from oec.sft.reports import read_resolved
from oec.sft.rows import build_messages, dedupe_key, switch_index, turn_weights
from oec.sft.selection import cap_per_instance, split_by_instance
from oec.sft.tokenized import load_tokenizer, write_tokenized
from oec.sft.turns import TurnError, trajectory_turns


class Summary:
    """What happened to every trajectory: kept, dropped (by reason) or worth a warning."""

    def __init__(self) -> None:
        self.trajectories = 0
        self.dropped: dict[str, list[Any]] = {}
        self.warnings: dict[str, list[str]] = {}
        self.orphan_reports: list[str] = []
        self.counts: dict[str, Any] = {}

    def drop(self, reason: str, ref: str, detail: str | None = None) -> None:
        """Record a dropped trajectory (`ref` is `<run>/<traj_id>`), with the error when there is one."""
        self.dropped.setdefault(reason, []).append(ref if detail is None else {"trajectory": ref, "error": detail})

    def warn(self, kind: str, ref: str) -> None:
        self.warnings.setdefault(kind, []).append(ref)

    def to_json(self, options: ConvertOptions, outputs: dict[str, str]) -> dict[str, Any]:
        return {
            "trajectories": self.trajectories,
            **self.counts,
            "dropped": {reason: len(entries) for reason, entries in sorted(self.dropped.items())},
            "dropped_trajectories": dict(sorted(self.dropped.items())),
            "orphan_reports": self.orphan_reports,
            "warnings": dict(sorted(self.warnings.items())),
            "outputs": outputs,
            "options": options.model_dump(mode="json"),
        }


def _problem_statements(files: Iterable[str]) -> dict[str, str]:
    return {instance.instance_id: instance.problem_statement for path in files for instance in load_instances(path)}


class _Converter:
    """Turns one candidate into a row, or records why not."""

    def __init__(self, options: ConvertOptions, prompt: StudentPrompt | None, statements: dict[str, str], summary: Summary):
        self.options = options
        self.prompt = prompt
        self.recorded = RecordedPrompts(options.style)
        self.statements = statements
        self.summary = summary

    def _resolved(self, candidate: Candidate) -> tuple[bool, bool | None]:
        """(usable, resolved) from the candidate's report, recording the reason when it is not usable."""
        if candidate.ambiguous:
            self.summary.drop("ambiguous_report", candidate.ref, ", ".join(map(str, candidate.reports)))
            return False, None
        if not candidate.reports:
            if self.options.resolved_only:
                self.summary.drop("missing_report", candidate.ref)
                return False, None
            self.summary.warn("missing_report", candidate.ref)
            return True, None
        try:
            resolved = read_resolved(candidate.reports[0])
        except SFTError as exc:
            self.summary.drop("corrupt_report", candidate.ref, str(exc))
            return False, None
        if self.options.resolved_only and not resolved:
            self.summary.drop("unresolved", candidate.ref)
            return False, None
        return True, resolved

    def row(self, candidate: Candidate) -> dict[str, Any] | None:
        try:
            trajectory = load_trajectory(candidate.traj_file, self.options.default_role)
        except TrajectoryError as exc:
            self.summary.drop("corrupt_trajectory", candidate.ref, str(exc))
            return None
        usable, resolved = self._resolved(candidate)
        if not usable:
            return None
        statement = self.statements.get(candidate.instance_id) or trajectory.problem_statement
        if not statement:
            self.summary.drop("no_problem_statement", candidate.ref)
            return None
        try:
            prompt = self.prompt or self.recorded.for_run_config(trajectory.replay_config, str(candidate.traj_file))
        except SFTError as exc:
            self.summary.drop("no_student_prompt", candidate.ref, str(exc))
            return None
        try:
            turns = trajectory_turns(trajectory, prompt.commands)
        except TurnError as exc:
            self.summary.drop("unconvertible_turn", candidate.ref, str(exc))
            return None
        weights = turn_weights(turns, self.options.mask_student)
        if not any(weights):
            self.summary.drop("nothing_to_train" if turns else "empty_trajectory", candidate.ref)
            return None
        repetition = self.options.repetition.reason(turns, weights)
        if repetition:
            self.summary.drop(repetition, candidate.ref)
            return None
        try:
            working_dir = self.options.working_dir or recorded_working_dir(trajectory.replay_config) or "/testbed"
            messages, opening = build_messages(prompt, turns, weights, statement, working_dir, self.options.observations == "as_seen")
        except FormatError as exc:
            self.summary.drop("unparseable_turn", candidate.ref, str(exc))
            return None
        mismatch = opening_mismatch(messages[:opening], trajectory) if self.prompt is None and self.options.style is None else None
        if mismatch:
            self.summary.drop("prompt_mismatch", candidate.ref, mismatch)
            return None
        if any("oracle" in turn.model_name.lower() for turn in turns):
            self.summary.warn("oracle_turns", candidate.ref)
        row = {"messages": messages, "opening_messages": opening, "instance_id": candidate.instance_id, "traj_id": candidate.traj_id,
               "model_switch_idx": switch_index(turns), "resolved": resolved, "source_run": candidate.source_run}
        if prompt.native_tool_calls:
            row["tools"] = prompt.tool_schemas
        return redact_data(row)  # the Parquet export is binary: masked here, not by the text writer


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def convert(options: ConvertOptions, show_progress: bool = True) -> dict[str, Any]:
    """Run the whole conversion and write every output file; returns the summary (also written to disk)."""
    prompt = load_student_prompt(options.prompt_config, options.style) if options.prompt_config is not None else None
    tokenizer = load_tokenizer(options.tokenizer) if options.tokenizer is not None else None
    statements = _problem_statements(options.instances)
    collection = collect(options.runs, options.evals)
    summary = Summary()
    summary.trajectories = len(collection.candidates)
    summary.orphan_reports = [str(path) for path in collection.orphan_reports]
    converter = _Converter(options, prompt, statements, summary)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for candidate in track(collection.candidates, description="converting", disable=not show_progress, transient=True):
        row = converter.row(candidate)
        if row is None:
            continue
        key = dedupe_key(row)
        if key in seen:
            summary.drop("duplicate", candidate.ref)
            continue
        seen.add(key)
        rows.append(row)
    rows, capped = cap_per_instance(rows, options.max_per_instance, options.seed)
    for row in capped:
        summary.drop("max_per_instance", f"{row['source_run']}/{row['traj_id']}")
    train, validation = split_by_instance(rows, options.val_fraction, options.seed)
    weights = [m["weight"] for row in rows for m in row["messages"][row["opening_messages"]:] if m["role"] == "assistant"]
    summary.counts = {
        "rows": {"train": len(train), "validation": len(validation)},
        "instances": {"train": len({r["instance_id"] for r in train}), "validation": len({r["instance_id"] for r in validation})},
        "assistant_turns": {"trained": sum(weights), "masked": len(weights) - sum(weights)},
    }
    kinds = ["train", "validation", "summary"] + (["train_tokens", "validation_tokens"] if tokenizer is not None else [])
    outputs = {kind: options.output_path(kind) for kind in kinds}
    write_text_atomic(outputs["train"], _jsonl(train))
    write_text_atomic(outputs["validation"], _jsonl(validation))
    if tokenizer is not None:
        write_tokenized(outputs["train_tokens"], train, tokenizer, show_progress)
        write_tokenized(outputs["validation_tokens"], validation, tokenizer, show_progress)
    result = summary.to_json(options, {kind: str(path) for kind, path in outputs.items()})
    write_json_atomic(outputs["summary"], result)
    return result
