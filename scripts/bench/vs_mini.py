"""Ours vs mini-swe-agent on the same replayed shell actions, both sandboxed, paired and interleaved (issue 20).

Usage: python scripts/bench/vs_mini.py [--pairs 10] [--mini-version 2.4.6] [--against GIT_REV]

mini-swe-agent is installed from the package registry into a temporary venv (never a project dependency; its own
dependencies come from this venv through a .pth). Each pair runs, in turn: our agent (`sweagent run` through its
console entry, with a replay model, in a fresh process: it builds the task workspace of a demo addict instance and
runs commands in its bubblewrap sandbox), mini's DefaultAgent with its DeterministicModel and LocalEnvironment in a fresh process inside a
bubblewrap sandbox of the same layout (workspace prepared beforehand, writable at /testbed; read-only system, no
network, the unprivileged user, the task's test venv; the copy of the prepared workspace and its removal are timed
apart), and the same commands as bare `bash -c` on a host copy.
The action list: 30 shell commands (reads, greps, a heredoc, edits, the test venv's python) plus submit.
Printed per agent (medians over the pairs, and the median of the per-pair ratios ours/mini): startup (process start
to the first step), whole-run wall (process start to exit), per-step overhead (step wall minus the command's own
time; steps 1-5 and 26-30), command time above bare `bash -c`, and the trajectory file's size.
`--against REV` adds our agent at commit REV to every round (its tree in a temporary git worktree, see
other_commit.py), so a change is measured before and after under the same load; the order rotates per round.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[2]
INSTANCE_ID = "mewwts__addict.75284f95.func_pm_remove_assign__rcw8507l"
MINI_SUBMIT = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached"
HEREDOC = "cat <<'EOF' > /tmp/repro.py\nfrom addict import Dict\nd = Dict()\nd.a.b = 1\nprint(d, d.to_dict())\nEOF"
COMMANDS = [
    "ls", "ls addict", "wc -l addict/addict.py", "head -40 addict/addict.py", "grep -n 'def ' addict/addict.py",
    "cat addict/addict.py", "git status --short", "git log --oneline | head -5", "sed -n 60,120p addict/addict.py",
    "grep -rn '__setattr__' addict", HEREDOC, "cd /testbed && python /tmp/repro.py",
    "find . -name '*.py' | head -20", "grep -c '' addict/*.py", "cat README.md | head -30",
    "sed -i 's/^__version__ = .*/__version__ = \"2.4.0\"/' addict/__init__.py", "git diff",
    "python -c 'import addict; print(addict.__version__)'", "grep -n 'return' addict/addict.py | head -20",
    "ls -la /testbed", "cat <<'EOF' >> NOTES.md\nchecked __setattr__\nand to_dict\nEOF", "tail -5 NOTES.md",
    "grep -n 'isinstance' addict/addict.py", "sed -n 1,30p addict/addict.py", "wc -c addict/addict.py",
    "python /tmp/repro.py", "git status --short", "grep -rn 'def to_dict' -A8 addict", "head -c 1500 addict/addict.py",
    "git diff --stat",
]
FIRST, LAST = slice(0, 5), slice(25, 30)


# ---- child processes -------------------------------------------------------------------------------------------------
def write_our_run(out: Path, ro_binds: list[str]) -> None:
    """The replay model's outputs and the `sweagent run` config, written before the timed process starts (mini's
    outputs are built in its process: a list, no file). `ro_binds`: what another commit's sandbox server must be
    shown (see other_commit.py)."""
    import yaml

    outputs = [f"Step {i}.\n<function=bash><parameter=command>{c}</parameter></function>" for i, c in enumerate(COMMANDS)]
    (out / "replay.yaml").write_text(yaml.safe_dump([*outputs, "Done.\n<function=submit></function>"]))
    (out / "config.yaml").write_text(yaml.safe_dump({"agent": {
        "templates": {"system_template": "{{command_docs}}\n{{format_instructions}}"},
        "tools": {"bundles": [{"path": "tools/registry"}, {"path": "tools/edit_anthropic"}, {"path": "tools/submit"}],
                  "parse_function": {"type": "xml_function_calling"}},
        "model": {"type": "replay", "replay_path": str(out / "replay.yaml")}}, "output_dir": str(out / "run"),
        "instance_file": str(REPO / "config/demo/instances.json"), "instance_id": INSTANCE_ID,
        **({"env": {"deployment": {"type": "sandbox", "ro_binds": ro_binds}}} if ro_binds else {})}))


def run_ours(out: Path) -> None:
    """`sweagent run` with `write_our_run`'s config through its console entry (early environment start, exit
    without teardown), steps timed by patching the agent's step as its module loads; writes {step_starts,
    execution, end_at, traj_bytes}."""
    starts: list[float] = []

    def time_steps(agents) -> None:  # type: ignore[no-untyped-def]
        original_step = agents.DefaultAgent.step

        def timed_step(self, env):  # type: ignore[no-untyped-def]
            starts.append(time.monotonic())
            return original_step(self, env)

        agents.DefaultAgent.step = timed_step

    def record_end(run_single) -> None:  # type: ignore[no-untyped-def]
        original_run_one = run_single.run_one

        def timed_run_one(*args, **kwargs):  # type: ignore[no-untyped-def]
            trajectory = original_run_one(*args, **kwargs)
            end_at = time.monotonic()
            assert trajectory.info.exit_status == "submitted", trajectory.info.exit_status
            (out / "timings.json").write_text(json.dumps({
                "step_starts": starts, "end_at": end_at, "execution": [step.execution_time for step in trajectory.trajectory],
                "traj_bytes": (out / "run" / INSTANCE_ID / f"{INSTANCE_ID}.traj").stat().st_size}))
            return trajectory

        run_single.run_one = timed_run_one

    sys.meta_path.insert(0, _AfterImport({"sweagent.agent.agents": time_steps, "sweagent.run.run_single": record_end}))
    sys.argv = ["sweagent", "run", "--config", str(out / "config.yaml")]
    from sweagent.run import cli

    getattr(cli, "entry", lambda: sys.exit(cli.main()))()  # --against an older commit: its exit


class _AfterImport:
    """A module finder that calls `patches[name](module)` once the module `name` has loaded (and finds nothing itself)."""

    def __init__(self, patches: dict) -> None:  # type: ignore[type-arg]
        self.patches = patches

    def find_spec(self, name: str, path, target=None):  # type: ignore[no-untyped-def]
        if name not in self.patches:
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        load, patch = spec.loader.exec_module, self.patches.pop(name)

        def exec_module(module) -> None:  # type: ignore[no-untyped-def]
            load(module)
            patch(module)

        spec.loader.exec_module = exec_module
        return spec


def run_mini(out: Path) -> None:
    """mini-swe-agent's DefaultAgent + DeterministicModel + LocalEnvironment in /testbed (run inside the sandbox)."""
    os.environ["MSWEA_SILENT_STARTUP"] = "1"
    import yaml
    from minisweagent import package_dir
    from minisweagent.agents.default import DefaultAgent
    from minisweagent.environments.local import LocalEnvironment
    from minisweagent.models.test_models import DeterministicModel, make_output

    starts: list[float] = []
    execution: list[float] = []

    class TimedAgent(DefaultAgent):
        def step(self):  # type: ignore[no-untyped-def]
            starts.append(time.monotonic())
            return super().step()

    class TimedEnvironment(LocalEnvironment):
        def execute(self, action, cwd="", *, timeout=None):  # type: ignore[no-untyped-def]
            started = time.monotonic()
            try:
                return super().execute(action, cwd, timeout=timeout)
            finally:
                execution.append(time.monotonic() - started)

    config = yaml.safe_load((package_dir / "config" / "default.yaml").read_text())
    outputs = [make_output(f"Step {i}.\n\n```mswea_bash_command\n{c}\n```", [{"command": c}], cost=0.0)
               for i, c in enumerate([*COMMANDS, MINI_SUBMIT])]
    model = DeterministicModel(outputs=outputs, **{k: v for k, v in config.get("model", {}).items() if k == "observation_template"})
    agent = TimedAgent(model, TimedEnvironment(cwd="/testbed"), **{**config["agent"], "output_path": out / "mini.traj.json"})
    result = agent.run("Dict attribute assignment loses nested values")
    assert result.get("exit_status") == "Submitted", result
    (out / "timings.json").write_text(json.dumps({"step_starts": starts, "execution": execution, "end_at": time.monotonic(),
                                                  "traj_bytes": (out / "mini.traj.json").stat().st_size}))


# ---- the parent ------------------------------------------------------------------------------------------------------
def install_mini(root: Path, version: str) -> Path:
    """A venv with mini-swe-agent `version` from the registry; its dependencies are this venv's (a .pth line)."""
    import sysconfig

    venv = root / "mini-venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    f"mini-swe-agent=={version}"], check=True)
    (site / "oec_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def once_ours(root: Path, other: tuple[str, str] | None = None) -> dict:
    """One run of ours in a fresh process (`other`: another commit's (python, packages), see other_commit.py). It
    may write bytecode, so the warm-up leaves our modules compiled as an installed package's are (mini's registry
    install comes compiled); an inherited PYTHONDONTWRITEBYTECODE would have every run compile each module edited
    since its last .pyc anew."""
    out = Path(tempfile.mkdtemp(prefix="ours-", dir=root))
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    python = other[0] if other else sys.executable
    write_our_run(out, [other[1]] if other else [])
    started = time.monotonic()
    child = subprocess.run([python, str(SCRIPT), "--child-ours", str(out)], cwd=REPO, env={**env, "PYTHONPATH": ""},
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if child.returncode != 0:
        raise RuntimeError(f"our run failed ({child.returncode}): {child.stderr.decode()[-2000:]}")
    return {**json.loads((out / "timings.json").read_text()), "spawned_at": started, "exited_at": time.monotonic()}


def once_mini(root: Path, venv: Path, problem, workspace_template: Path) -> dict:  # type: ignore[no-untyped-def]
    from sweagent.environment.sandbox.bwrap import SandboxLayout, sandbox_owns, sandbox_uid, scratch_dirs, spawn_sandbox

    work = Path(tempfile.mkdtemp(prefix="mini-", dir=root))
    copy_started = time.monotonic()
    shutil.copytree(workspace_template, work / "repo", symlinks=True)
    workspace_s = time.monotonic() - copy_started
    env, ro_binds = problem.sandbox_options("/testbed")
    with scratch_dirs(str(work)) as (home, tmp):
        layout = SandboxLayout.create(work / "repo", home, tmp, mount="/testbed", env={**env, "HOME": "/root"},
                                      ro_binds=[*ro_binds, str(venv), f"{SCRIPT}:/opt/oec-bench/vs_mini.py"],
                                      uid=sandbox_uid())
        with sandbox_owns(layout):
            started = time.monotonic()
            sandbox = spawn_sandbox(layout, [str(venv / "bin" / "python"), "/opt/oec-bench/vs_mini.py", "--child-mini", "/tmp"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, stderr = sandbox.popen.communicate()
            exited = time.monotonic()
            sandbox.kill()
        if sandbox.popen.returncode != 0:
            raise RuntimeError(f"mini-swe-agent run failed ({sandbox.popen.returncode}): {stderr.decode()[-2000:]}")
        timings = json.loads((tmp / "timings.json").read_text())
    removal_started = time.monotonic()
    shutil.rmtree(work, ignore_errors=True)
    workspace_s += time.monotonic() - removal_started
    return {**timings, "spawned_at": started, "exited_at": exited, "workspace_s": workspace_s}


def once_bare(workspace_template: Path, root: Path, task_env: dict[str, str]) -> list[float]:
    """Each command as `bash -c` in a host copy of the workspace with the task's PATH (the floor both agents pay)."""
    work = Path(tempfile.mkdtemp(prefix="bare-", dir=root))
    shutil.copytree(workspace_template, work / "repo", symlinks=True)
    (work / "tmp").mkdir()
    env = {**os.environ, **task_env}
    seconds = []
    for command in COMMANDS:
        command = command.replace("/testbed", str(work / "repo")).replace("/tmp/", f"{work}/tmp/")
        started = time.monotonic()
        subprocess.run(["bash", "-c", command], cwd=work / "repo", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        seconds.append(time.monotonic() - started)
    shutil.rmtree(work, ignore_errors=True)
    return seconds


def figures(run: dict, bare: list[float]) -> dict:
    starts, execution = run["step_starts"], run["execution"]
    walls = [later - earlier for earlier, later in zip(starts, [*starts[1:], run["end_at"]])]
    overhead = [(wall - exe) * 1000 for wall, exe in zip(walls, execution)]
    return {"startup": starts[0] - run["spawned_at"], "wall": run["exited_at"] - run["spawned_at"],
            "first": statistics.median(overhead[FIRST]), "last": statistics.median(overhead[LAST]),
            "above_bare": statistics.median([(exe - b) * 1000 for exe, b in zip(execution, bare)]),
            "traj_kb": run["traj_bytes"] / 1024, "workspace": run.get("workspace_s", 0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--mini-version", default="2.4.6")
    parser.add_argument("--against", metavar="GIT_REV", help="also run ours at this commit in every round (before/after)")
    parser.add_argument("--child-ours", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-mini", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_ours:
        return run_ours(args.child_ours)
    if args.child_mini:
        return run_mini(args.child_mini)
    with contextlib.ExitStack() as stack:
        other = None
        if args.against:
            sys.path.insert(0, str(SCRIPT.parent))  # not at the top: mini's child runs this file alone in its sandbox
            from other_commit import other_commit_python

            other = stack.enter_context(other_commit_python(args.against))
        rows, load = measure_rounds(args.pairs, args.mini_version, other)
    print_table(rows, load, args)


def measure_rounds(pairs: int, mini_version: str, other: tuple[str, str] | None) -> tuple[dict[str, list[dict]], tuple]:
    """`pairs` rounds, each running every agent once after the bare commands, in an order that rotates per round."""
    from sweagent.environment.problem import InstanceProblem
    from sweagent.instance import find_instance

    root = Path(tempfile.mkdtemp(prefix="oec-vs-mini-"))
    try:
        venv = install_mini(root, mini_version)
        problem = InstanceProblem(find_instance(REPO / "config/demo/instances.json", INSTANCE_ID))
        template = root / "workspace"
        problem.build_workspace(template)
        runners = {"ours": lambda: once_ours(root), "mini": lambda: once_mini(root, venv, problem, template)}
        if other:
            runners["against"] = lambda: once_ours(root, other)
        for run in runners.values():
            run()  # warm-up: caches, the sdist tree, bytecode
        load_before = os.getloadavg()
        rows: dict[str, list[dict]] = {name: [] for name in runners}
        names = list(runners)
        for pair in range(pairs):
            bare = once_bare(template, root, problem.sandbox_options("/testbed")[0])
            for name in names[pair % len(names):] + names[:pair % len(names)]:  # interleaved, who goes first rotates
                rows[name].append(figures(runners[name](), bare))
        return rows, (load_before, os.getloadavg())
    finally:
        shutil.rmtree(root, ignore_errors=True)


def print_table(rows: dict[str, list[dict]], load: tuple, args: argparse.Namespace) -> None:
    print(f"{len(COMMANDS)} commands + submit on {INSTANCE_ID}, {args.pairs} interleaved rounds; "
          f"load average {load[0][0]:.1f} before, {load[1][0]:.1f} after, on {os.cpu_count()} CPUs")
    columns = [("whole run s", "wall", 2), ("startup s", "startup", 2), ("overhead/step ms, steps 1-5", "first", 1),
               ("overhead/step ms, steps 26-30", "last", 1), ("above bare ms/step", "above_bare", 1), (".traj KB", "traj_kb", 0)]
    labels = {"ours": "ours (sandbox)", "against": f"ours at {args.against} (sandbox)",
              "mini": f"mini-swe-agent {args.mini_version} (bwrap)"}
    print("| | " + " | ".join(title for title, _, _ in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name in rows:
        cells = [f"{statistics.median(r[key] for r in rows[name]):.{digits}f}" for _, key, digits in columns]
        print(f"| {labels[name]} | " + " | ".join(cells) + " |")
    comparisons = [("ours", "mini", "ours/mini")] + ([("against", "mini", f"{args.against}/mini"),
                                                      ("ours", "against", f"ours/{args.against}")] if "against" in rows else [])
    for top, bottom, label in comparisons:
        ratios = []
        for _, key, _ in columns:
            pair_ratios = [o[key] / m[key] for o, m in zip(rows[top], rows[bottom]) if m[key] > 0]
            ratios.append(f"{statistics.median(pair_ratios):.2f}" if pair_ratios else "n/a")
        print(f"| {label} (median of rounds) | " + " | ".join(ratios) + " |")
    for name in [name for name in ("ours", "against") if name in rows]:
        with_workspace = [o["wall"] / (m["wall"] + m["workspace"]) for o, m in zip(rows[name], rows["mini"])]
        print(f"{labels[name]}: whole run / (mini's + its workspace copy and removal): {statistics.median(with_workspace):.2f}")
    print(f"ours builds its workspace from the pinned sdist and deletes it within its run; mini gets a copy of a prepared "
          f"one (copy and removal, median {statistics.median(m['workspace'] for m in rows['mini']):.2f} s, outside its figures)")


if __name__ == "__main__":
    main()
