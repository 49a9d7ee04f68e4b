"""Build the bundled demo task set (config/demo/instances.json) from pinned PyPI sdists that ship their tests.

For each repository profile: run the suite on the pristine tree in the sandbox; list the package's functions with
SWE-smith's Python entity extractor; plant bugs with SWE-smith's procedural modifiers (operator changes, swapped
operands, broken chains, changed constants, inverted if/else, shuffled lines, removed assignments, conditionals,
loops and wrappers); and keep a bug only when the sandbox shows that it breaks a few tests (FAIL_TO_PASS: passing
on the pristine tree, failing with the bug), that the rest still pass (PASS_TO_PASS), and that the reverse patch
brings every one of them back. Its problem statement is written from the failing tests' output.

Seeded and idempotent: the same seed gives the same file. Each candidate's verdict is kept under
`$OEC_CACHE/demo-build/`, so an interrupted build resumes where it stopped (`--fresh` re-validates everything).

    python scripts/build_demo_instances.py [--seed 24] [--per-repo 8] [--repos swesmith/mewwts__addict.75284f95 ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from swesmith.bug_gen.adapters.python import get_entities_from_file_py
from swesmith.bug_gen.procedural.base import ProceduralModifier
from swesmith.bug_gen.procedural.python import MODIFIERS_PYTHON
from swesmith.bug_gen.procedural.python.operations import OperationFlipOperatorModifier
from swesmith.bug_gen.utils import generate_patch_fast
from swesmith.constants import CodeEntity, CodeProperty

from sweagent.environment.task_repos.bug_reports import write_problem_statement
from sweagent.environment.task_repos.profiles import REPO_PROFILES, RepoProfile, get_profile
from sweagent.environment.task_repos.source_cache import cache_root, pristine_tree
from sweagent.environment.task_repos.test_venv import sandbox_env
from sweagent.environment.container.swesmith_profiles import image_name
from sweagent.environment.task_repos.tests_runner import SuiteResult, grade, is_resolved, run_tests
from sweagent.environment.task_repos.workspace import apply_patch, build_workspace
from sweagent.instance import TaskInstance
from sweagent.utils.files import write_json_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "config" / "demo" / "instances.json"

# Function-level modifiers only: each bug stays inside one function, as a small real regression would.
FUNCTION_MODIFIERS: list[ProceduralModifier] = [
    pm for pm in MODIFIERS_PYTHON if CodeProperty.IS_FUNCTION in pm.conditions
] + [OperationFlipOperatorModifier(likelihood=0.4)]


class DemoBuildError(ValueError):
    """A repository that cannot serve the demo set (its pristine suite does not pass in the sandbox)."""


@dataclass(frozen=True)
class Candidate:
    """One (function, modifier) pair: the bug it plants is fixed by its own seed."""

    entity: CodeEntity
    modifier: ProceduralModifier
    rel_path: str

    def seed(self, base_seed: int) -> int:
        key = f"{base_seed}:{self.rel_path}:{self.entity.line_start}:{self.entity.name}:{self.modifier.name}"
        return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16)


@dataclass(frozen=True)
class Baseline:
    passing: frozenset[str]
    timeout_s: float


def _is_test_file(profile: RepoProfile, rel_path: str) -> bool:
    path = PurePosixPath(rel_path)
    in_suite = any(path.is_relative_to(test_path) for test_path in profile.test_paths)
    return in_suite or path.name.startswith("test") or path.name == "conftest.py"


def _whole_id(test_id: str) -> bool:
    """swebench's pytest parser cuts ids at whitespace (`test_x[a, b]`); such cut ids are left ungraded."""
    return test_id.count("[") == test_id.count("]")


def candidates(profile: RepoProfile, tree: Path, seed: int) -> list[Candidate]:
    """Every applicable (function, modifier) pair, shuffled, then interleaved by modifier for variety."""
    by_modifier: dict[str, list[Candidate]] = defaultdict(list)
    for source_path in profile.source_paths:
        root = tree / source_path
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for file in files:
            rel_path = file.relative_to(tree).as_posix()
            if _is_test_file(profile, rel_path):
                continue
            entities: list[CodeEntity] = []
            get_entities_from_file_py(entities, str(file))
            for entity in entities:
                for modifier in FUNCTION_MODIFIERS:
                    if modifier.can_change(entity):
                        by_modifier[modifier.name].append(Candidate(entity, modifier, rel_path))
    # Seeded by the package, not `repo`: renaming a profile does not change which bugs are picked.
    rng = random.Random(f"{seed}:{profile.source.package}")
    queues = [by_modifier[name] for name in sorted(by_modifier)]
    for queue in queues:
        rng.shuffle(queue)
    rng.shuffle(queues)
    interleaved = []
    for round_ in range(max((len(q) for q in queues), default=0)):
        interleaved += [queue[round_] for queue in queues if round_ < len(queue)]
    return interleaved


def plant_bug(candidate: Candidate, tree: Path, seed: int) -> tuple[str, str] | None:
    """Run the modifier on the function (fresh, seeded instance); return (patch, rewrite hash) or None."""
    template = candidate.modifier
    modifier = type(template)(likelihood=template.likelihood, seed=candidate.seed(seed))
    bug = modifier.modify(candidate.entity)
    if bug is None:
        return None
    patch = generate_patch_fast(candidate.entity, bug, str(tree))
    return (patch, bug.get_hash()) if patch else None


def run_baseline(profile: RepoProfile, scratch: Path) -> Baseline:
    """The pristine suite must pass in the sandbox; its runtime sets the per-candidate timeout."""
    pristine = TaskInstance(instance_id=f"{profile.repo_name}.pristine", repo=profile.repo)
    workspace = build_workspace(pristine, scratch / f"{profile.repo_name}.pristine")
    result = run_tests(workspace.path, profile)
    if result.exit_code != 0 or not result.passed():
        raise DemoBuildError(f"{profile.repo}: the test suite fails on the pristine tree:\n{result.output[-3000:]}")
    passing = frozenset(test for test in result.passed() if _whole_id(test))
    return Baseline(passing, timeout_s=max(30.0, 10 * result.duration_s))


def validate(profile: RepoProfile, instance_id: str, patch: str, baseline: Baseline, scratch: Path, max_f2p: int) -> dict:
    """Sandbox verdict for one bug: accepted or the reason not, its FAIL_TO_PASS/PASS_TO_PASS and the buggy log."""
    draft = TaskInstance(instance_id=instance_id, repo=profile.repo, patch=patch, source=profile.source)
    workspace = build_workspace(draft, scratch / instance_id, hide_fail_to_pass_tests=False)
    buggy = run_tests(workspace.path, profile, timeout=baseline.timeout_s)
    reason = _rejection(buggy, baseline, max_f2p)
    if reason:
        return {"accepted": False, "reason": reason}
    draft.FAIL_TO_PASS = sorted(t for t in baseline.passing if t in buggy.failed())
    draft.PASS_TO_PASS = sorted(t for t in baseline.passing if t in buggy.passed())
    apply_patch(workspace.path, patch, reverse=True, what=f"{instance_id}: reverse patch")
    fixed = run_tests(workspace.path, profile, timeout=baseline.timeout_s)
    if not is_resolved(grade(draft, fixed.statuses)):
        return {"accepted": False, "reason": "the reverse patch does not resolve it"}
    return {
        "accepted": True, "reason": "", "FAIL_TO_PASS": draft.FAIL_TO_PASS, "PASS_TO_PASS": draft.PASS_TO_PASS,
        "log": buggy.output,
    }


def to_instance(profile: RepoProfile, instance_id: str, patch: str, verdict: dict) -> dict:
    """The instance row of an accepted bug, its problem statement written from the buggy tree's test log."""
    statement = write_problem_statement(
        package=profile.source.package, version=profile.source.version, instance_id=instance_id,
        failing_tests=verdict["FAIL_TO_PASS"], log=verdict["log"],
    )
    instance = TaskInstance(
        instance_id=instance_id, repo=profile.repo, patch=patch, FAIL_TO_PASS=verdict["FAIL_TO_PASS"],
        PASS_TO_PASS=verdict["PASS_TO_PASS"], problem_statement=statement, image_name=image_name(profile),
        source=profile.source,
    )
    return instance.model_dump(mode="json")


def _rejection(buggy: SuiteResult, baseline: Baseline, max_f2p: int) -> str:
    if buggy.timed_out:
        return "the tests hang"
    missing = [t for t in baseline.passing if t not in buggy.statuses]
    if missing:
        return f"{len(missing)} tests no longer run (import or collection error)"
    broken = [t for t in baseline.passing if t in buggy.failed()]
    if not broken:
        return "no test notices the bug"
    if len(broken) > max_f2p:
        return f"{len(broken)} tests fail (more than {max_f2p})"
    return ""


_VERDICT_FORMAT = 2
"""Bump when the fields of a cached verdict change, so old verdicts are not read."""


class VerdictCache:
    """Per-candidate verdicts on disk, so a rerun skips the sandbox for bugs already judged."""

    def __init__(self, profile: RepoProfile, seed: int, max_f2p: int, enabled: bool):
        # The test environment is part of the key: a change to it (e.g. its variables) calls for new verdicts.
        settings = [_VERDICT_FORMAT, profile.model_dump(mode="json"), sandbox_env(profile), seed, max_f2p]
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        self.folder = cache_root() / "demo-build" / f"{profile.repo_name}-{digest}"
        self.enabled = enabled

    def _path(self, instance_id: str) -> Path:
        return self.folder / f"{instance_id}.json"

    def get(self, instance_id: str) -> dict | None:
        path = self._path(instance_id)
        return json.loads(path.read_text(encoding="utf-8")) if self.enabled and path.is_file() else None

    def put(self, instance_id: str, verdict: dict) -> None:
        write_json_atomic(self._path(instance_id), verdict)


def build_repo(args: argparse.Namespace, profile: RepoProfile, progress: Progress) -> Iterator[dict]:
    """Accepted instances of one repository, at most `per_repo`, varied across modifiers and functions."""
    tree = pristine_tree(profile.source)
    cache = VerdictCache(profile, args.seed, args.max_f2p, enabled=not args.fresh)
    task = progress.add_task(f"{profile.repo}: baseline", total=args.per_repo)
    with tempfile.TemporaryDirectory(prefix=f"oec-demo-{profile.repo_name}-") as tmp:
        scratch = Path(tmp)
        baseline = run_baseline(profile, scratch)
        accepted, per_modifier, used_functions, tried = 0, defaultdict(int), set(), 0
        for candidate in candidates(profile, tree, args.seed):
            function = (candidate.rel_path, candidate.entity.line_start)
            if accepted >= args.per_repo or tried >= args.max_attempts:
                break
            if per_modifier[candidate.modifier.name] >= args.per_modifier or function in used_functions:
                continue
            planted = plant_bug(candidate, tree, args.seed)
            if planted is None:
                continue
            patch, rewrite_hash = planted
            instance_id = f"{profile.repo_name}.{candidate.modifier.name}__{rewrite_hash}"  # SWE-smith's id form
            tried += 1
            progress.update(task, description=f"{profile.repo}: candidate {tried} ({candidate.modifier.name})")
            verdict = cache.get(instance_id)
            if verdict is None:
                verdict = validate(profile, instance_id, patch, baseline, scratch, args.max_f2p)
                cache.put(instance_id, verdict)
                shutil.rmtree(scratch / instance_id, ignore_errors=True)
            if verdict["accepted"]:
                accepted += 1
                per_modifier[candidate.modifier.name] += 1
                used_functions.add(function)
                progress.advance(task)
                yield to_instance(profile, instance_id, patch, verdict)
        progress.update(task, description=f"{profile.repo}: {accepted} instances from {tried} candidates")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="instances file to write (JSON list)")
    parser.add_argument("--repos", nargs="+", default=sorted(REPO_PROFILES), help="repository profiles to use")
    parser.add_argument("--seed", type=int, default=24, help="seed for candidate order and modifier randomness")
    parser.add_argument("--per-repo", type=int, default=8, help="instances to keep per repository")
    parser.add_argument("--per-modifier", type=int, default=2, help="instances per modifier per repository")
    parser.add_argument("--max-f2p", type=int, default=10, help="drop bugs that break more tests than this")
    parser.add_argument("--max-attempts", type=int, default=120, help="candidates validated per repository, at most")
    parser.add_argument("--fresh", action="store_true", help="ignore verdicts cached by earlier runs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        profiles = [get_profile(repo) for repo in args.repos]
        instances: list[dict] = []
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns) as progress:
            for profile in profiles:
                instances += build_repo(args, profile, progress)
    except ValueError as exc:  # bad repo name, sdist hash mismatch, a pristine suite that fails
        print(f"build_demo_instances: {exc}", file=sys.stderr)
        return 2
    instances.sort(key=lambda row: row["instance_id"])
    write_json_atomic(args.output, instances)
    print(f"wrote {len(instances)} instances over {len({row['repo'] for row in instances})} repositories to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
