"""Hostile instance and traj ids: every stage refuses them with one line naming the source, and writes nothing.

Ids reach a stage through files (instance files, predictions) and through folder names (run and eval dirs); each
stage is fed every hostile id through every channel it reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sweagent.ids import MAX_ID_LENGTH, id_from_name, id_problem
from sweagent.instance import load_instances
from sweagent.trajectory import Trajectory, traj_path

REPO = Path(__file__).resolve().parents[1]
VALID = load_instances(REPO / "config/demo/instances.json")[0].instance_id

# Every id is a folder name when `folder` is true (a file system cannot hold `/`, NUL, `.`, `..`, an empty name).
HOSTILE = {
    "parent": ("../escaped", False),
    "absolute": ("{tmp}/escaped", False),
    "nested": ("a/b", False),
    "dot": (".", False),
    "dotdot": ("..", False),
    "empty": ("", False),
    "nul": ("a\x00b", False),
    "too_long": ("x" * 300, False),
    "newline": ("ok\nINFO forged log line", True),
    "escape_sequence": ("x\x1b[2Jcleared", True),
    "tab": ("a\tb", True),
    "hidden": (".hidden", True),
    "option": ("-rf", True),
    "space": ("a b", True),
    "unicode": ("caf\u00e9", True),
    "long_folder": ("y" * (MAX_ID_LENGTH + 1), True),
}
FOLDER_NAMES = [name for name, (_, folder) in HOSTILE.items() if folder]


def hostile(name: str, tmp_path: Path) -> str:
    return HOSTILE[name][0].replace("{tmp}", str(tmp_path))


# ---- the validator ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [VALID, "django__django-11099", "getmoto__moto.694ce1f4.pr_5612", "A1", "x" * MAX_ID_LENGTH])
def test_swe_smith_and_swe_bench_ids_are_accepted(value: str) -> None:
    assert id_problem(value) is None
    assert id_problem(f"{value}__r3", traj=True) is None


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_ids_are_refused_in_one_line(name: str, tmp_path: Path) -> None:
    problem = id_problem(hostile(name, tmp_path))
    assert problem is not None and "\n" not in problem and len(problem) < 400
    assert id_problem(hostile(name, tmp_path), traj=True) is not None


def test_a_rollout_suffix_is_only_allowed_on_traj_ids() -> None:
    long_id = "x" * MAX_ID_LENGTH
    assert id_problem(f"{long_id}__r1") is not None
    assert id_problem(f"{long_id}__r1", traj=True) is None


@pytest.mark.parametrize(("name", "expected"), [("calc", "calc"), (".dotfiles", "dotfiles"), ("my repo", "my_repo"), ("", "repo")])
def test_local_repository_names_become_valid_ids(name: str, expected: str) -> None:
    assert id_from_name(name) == expected and id_problem(id_from_name(name)) is None


# ---- every stage, every channel ---------------------------------------------------------------------------------


def write_instances(path: Path, instance_id: str) -> Path:
    instance = json.loads((REPO / "config/demo/instances.json").read_text())[0]
    path.write_text(json.dumps([{**instance, "instance_id": instance_id}]))
    return path


def write_traj(run_dir: Path, traj_id: str) -> None:
    Trajectory().save(traj_path(run_dir, traj_id))


def run_cli(tmp: Path, out: Path, instance_id: str) -> tuple[Callable[[], int], str]:
    from sweagent.run.run_single import main

    source = write_instances(tmp / "instances.json", instance_id)
    return lambda: main(["--instance_file", str(source), "--instance_id", VALID, "--output_dir", str(out)]), str(source)


def run_cli_option(tmp: Path, out: Path, instance_id: str) -> tuple[Callable[[], int], str]:
    from sweagent.run.run_single import main

    source = write_instances(tmp / "instances.json", VALID)
    return lambda: main(["--instance_file", str(source), "--instance_id", instance_id, "--output_dir", str(out)]), str(source)


def run_batch_cli(tmp: Path, out: Path, instance_id: str) -> tuple[Callable[[], int], str]:
    from sweagent.run.run_batch import main

    source = write_instances(tmp / "instances.json", instance_id)
    return lambda: main(["--instances.path", str(source), "--output_dir", str(out)]), str(source)


def eval_cli(tmp: Path, out: Path, instance_id: str) -> tuple[Callable[[], int], str]:
    from oec.evaluation.cli import main

    run_dir = tmp / "run"
    run_dir.mkdir()
    preds = run_dir / "preds.json"
    preds.write_text(json.dumps({"x": {"instance_id": instance_id, "model_name_or_path": "m", "model_patch": ""}}))
    return lambda: main([str(run_dir), "--eval_dir", str(out)]), str(preds)


def merge_preds_cli(tmp: Path, out: Path, instance_id: str) -> tuple[Callable[[], int], str]:
    from sweagent.run.merge_preds import main

    pred = tmp / "run" / VALID / f"{VALID}.pred"
    pred.parent.mkdir(parents=True)
    pred.write_text(json.dumps({"instance_id": instance_id, "model_patch": ""}))
    return lambda: main([str(tmp / "run"), "--output", str(out / "preds.json")]), str(pred)


def sft_cli(tmp: Path, out: Path, instance_id: str) -> tuple[Callable[[], int], str]:
    from oec.sft.cli import main

    write_traj(tmp / "run", VALID)
    source = write_instances(tmp / "instances.json", instance_id)
    return lambda: main(["--runs", str(tmp / "run"), "--no-resolved_only", "--instances", str(source),
                         "--output", str(out / "sft.jsonl"), "--quiet"]), str(source)


def judge_cli(tmp: Path, out: Path, instance_id: str) -> tuple[Callable[[], int], str]:
    from failure_categorization.cli import main

    write_traj(tmp / "run", VALID)
    source = write_instances(tmp / "instances.json", instance_id)
    return lambda: main(["categorize", "--run_dir", str(tmp / "run"), "--instances", str(source),
                         "--output_dir", str(out), "--dry_run"]), str(source)


FILE_STAGES = {"run": run_cli, "run --instance_id": run_cli_option, "run-batch": run_batch_cli, "eval": eval_cli, "merge-preds": merge_preds_cli,
               "sft": sft_cli, "judge": judge_cli}


def sft_folder(tmp: Path, out: Path, folder: str) -> tuple[Callable[[], int], str]:
    from oec.sft.cli import main

    write_traj(tmp / "run", folder)
    return lambda: main(["--runs", str(tmp / "run"), "--no-resolved_only", "--output", str(out / "sft.jsonl"), "--quiet"]), str(tmp / "run")


def sft_eval_folder(tmp: Path, out: Path, folder: str) -> tuple[Callable[[], int], str]:
    from oec.sft.cli import main

    write_traj(tmp / "run", VALID)
    report = tmp / "eval" / folder / "report.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"patch_exists": True, "resolved": True}))
    return lambda: main(["--runs", str(tmp / "run"), "--evals", str(tmp / "eval"), "--output", str(out / "sft.jsonl"), "--quiet"]), str(tmp / "eval")


def judge_folder(tmp: Path, out: Path, folder: str) -> tuple[Callable[[], int], str]:
    from failure_categorization.cli import main

    write_traj(tmp / "run", folder)
    return lambda: main(["categorize", "--run_dir", str(tmp / "run"), "--output_dir", str(out), "--dry_run"]), str(tmp / "run")


def covariate_folder(tmp: Path, out: Path, folder: str) -> tuple[Callable[[], int], str]:
    from covariate_shift_analysis.cli import main

    write_traj(tmp / "expert", VALID)
    write_traj(tmp / "student", folder)
    return lambda: main(["--group", f"expert={tmp / 'expert'}", "--group", f"student={tmp / 'student'}", "--reference", "expert",
                         "--output-dir", str(out), "--embedding.cache_dir", str(out / "cache"), "--no-progress"]), str(tmp / "student")


def eval_folder(tmp: Path, out: Path, folder: str) -> tuple[Callable[[], int], str]:
    from oec.evaluation.cli import main

    pred = tmp / "run" / folder / f"{folder}.pred"
    pred.parent.mkdir(parents=True)
    pred.write_text(json.dumps({"instance_id": VALID, "model_patch": ""}))
    return lambda: main([str(tmp / "run"), "--eval_dir", str(out)]), str(tmp)


FOLDER_STAGES = {"sft-runs": sft_folder, "sft-evals": sft_eval_folder, "judge": judge_folder, "covariate": covariate_folder,
                 "eval": eval_folder}


def files_under(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def assert_refused_without_writing(tmp_path: Path, stage: Callable, value: str, capsys, monkeypatch) -> None:
    """Refused (exit 2), or skipped where a stage skips unreadable inputs (merge-preds): either way one line that
    names the source and what an id looks like, and no file written outside the output dir."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    monkeypatch.chdir(inputs)  # an id relative to the working directory would land in tmp_path too
    command, source = stage(inputs, out, value)
    before = files_under(tmp_path)
    code = command()
    err = capsys.readouterr().err.strip()
    assert code == 2 or (code == 0 and "skipped 1 unreadable" in err), err
    assert len(err.splitlines()) == 1 and source in err and "id of letters, digits" in err, err
    assert {path for path in files_under(tmp_path) - before if path != out and out not in path.parents} == set()


@pytest.mark.parametrize(("stage", "name"), [(stage, name) for stage in FILE_STAGES for name in HOSTILE
                                             if (stage, name) != ("run --instance_id", "empty")])  # '' is "required"
def test_every_stage_refuses_hostile_ids_in_its_input_files(tmp_path: Path, capsys, monkeypatch, stage: str, name: str) -> None:
    assert_refused_without_writing(tmp_path, FILE_STAGES[stage], hostile(name, tmp_path), capsys, monkeypatch)


@pytest.mark.parametrize("name", FOLDER_NAMES)
@pytest.mark.parametrize("stage", FOLDER_STAGES)
def test_every_stage_refuses_hostile_folder_names(tmp_path: Path, capsys, monkeypatch, stage: str, name: str) -> None:
    assert_refused_without_writing(tmp_path, FOLDER_STAGES[stage], hostile(name, tmp_path), capsys, monkeypatch)
