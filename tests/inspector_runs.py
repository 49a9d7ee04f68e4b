"""A small run as the pipeline leaves it, for the inspector's tests: OEC, student-only, plain SWE-agent and real
mini-swe-agent rollouts, one truncated file, eval reports, SFT rows made by the real converter, a judge verdict and
an analysis plot."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from oec.sft.pipeline import ConvertOptions, convert
from oec.sft.prompt import load_student_prompt
from oec.sft.synthetic import StepSpec, build_trajectory, write_trajectory
from sweagent.tools.parsing import ToolCall
from sweagent.trajectory import traj_path

FIXTURES = Path(__file__).parent / "fixtures" / "mini_swe_agent"
MINI_RESOLVED = "mewwts__addict.75284f95.func_pm_remove_assign__rcw8507l"
HOSTILE = "<script>alert('x')</script> \x1b[2J\x1b]0;owned\x07 [bold red]not markup[/]"
LONG_OBSERVATION = "\n".join(f"collected line {number}" for number in range(80))
COMMANDS = load_student_prompt().commands


@dataclass(frozen=True)
class DemoRun:
    run: Path
    evals: Path
    sft: Path
    analysis: Path
    judge: Path


def specs(roles: str, observations: dict[int, str] | None = None) -> list[StepSpec]:
    """One step per letter (s student, e expert, p no role); the last one submits."""
    steps = []
    for index, letter in enumerate(roles):
        last = index == len(roles) - 1
        call = ToolCall("submit", {}) if last else ToolCall("bash", {"command": f"grep -rn 'def parse' src | head -{index + 3}"})
        observation = (observations or {}).get(index, "" if last else f"src/parse.py:{index}: def parse(tag):")
        steps.append(StepSpec({"s": "student", "e": "expert", "p": None}[letter], call, observation, f"Step {index}: look."))
    return steps


def png(width: int = 8, height: int = 6) -> bytes:
    """A real, tiny PNG (a grey rectangle): what the analysis stages write, without drawing a chart."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def write_demo_run(root: Path) -> DemoRun:
    run, evals = root / "runs" / "oec", root / "runs" / "oec" / "eval"
    rollouts = {
        "pkg__parse-1__r0": ("sseee", True, {1: HOSTILE, 2: LONG_OBSERVATION}),
        "pkg__parse-1__r1": ("sesee", True, None),
        "pkg__parse-2": ("sss", False, None),
        "pkg__parse-3": ("ppp", True, None),
    }
    for traj_id, (roles, resolved, observations) in rollouts.items():
        trajectory = build_trajectory(traj_id.split("__r")[0], specs(roles, observations), COMMANDS)
        write_trajectory(run, evals, traj_id, trajectory, resolved)
    shutil.copytree(FIXTURES / "v1" / MINI_RESOLVED, run / MINI_RESOLVED)
    broken = traj_path(run, "pkg__broken-1")
    write_trajectory(run, None, "pkg__broken-1", build_trajectory("pkg__broken-1", specs("se"), COMMANDS), True)
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    sft = root / "sft" / "oec.jsonl"
    convert(ConvertOptions(runs=[str(run)], evals=[str(evals)], output=sft, val_fraction=0.0), show_progress=False)
    analysis, judge = root / "covariate_shift", root / "failures"
    (analysis / "plots").mkdir(parents=True)
    (analysis / "plots" / "frechet.png").write_bytes(png())
    (analysis / "frechet.csv").write_text("group,turn,value\noec,0,0.5\n")
    verdict = {"category": "wrong_fix", "description": "edited the wrong function", "flagged": False, "agreement": 1.0,
               "samples": [], "usage": {"calls": 1}, "error": None, "traj_id": "pkg__parse-2",
               "instance_id": "pkg__parse-2", "repository": "pkg", "exit_status": "submitted",
               "trajectory_file": str(traj_path(run, "pkg__parse-2")), "judge_model": "openai/expert",
               "judge_fingerprint": "test"}  # failure_categorization.verdicts.Verdict's fields, as save_verdict writes them
    (judge / "verdicts").mkdir(parents=True)
    (judge / "verdicts" / "pkg__parse-2.json").write_text(json.dumps(verdict))
    return DemoRun(run, evals, sft, analysis, judge)
