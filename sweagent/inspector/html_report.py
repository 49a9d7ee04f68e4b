"""The static HTML report: one self-contained folder to open or copy off a cluster.

`index.html` lists the rollouts (sortable, filterable), `rollouts/<run>/<traj_id>.html` shows each one's steps,
and `analysis/` holds copies of the analysis plots and tables. CSS and JS are inline, nothing is fetched at view
time, and a Content-Security-Policy allows only the report's own script (by hash), so the pages work offline and
no text from a trajectory (all of it escaped) can run code or call out.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path
from typing import Any

import jinja2

from sweagent.ids import id_from_name
from sweagent.inspector.extras import AnalysisFile, Extras, Verdict
from sweagent.inspector.index import InspectError, Rollout, RunIndex
from sweagent.inspector.steps import FOLD_LINES, LoadedRollout, StepView, load_steps
from sweagent.trajectory import ModelRole
from sweagent.utils.files import write_text_atomic

ASSETS = Path(__file__).parent / "assets"
GENERATOR = "sweagent inspect"
TEST_ORDER = {"FAIL_TO_PASS": 0, "PASS_TO_PASS": 1}
"""The eval's test groups that decide `resolved` come first; groups without a test are left out."""
OWNED = ("rollouts", "analysis")
"""Sub-folders a rerun replaces; anything else in OUT_DIR is left alone."""


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(ASSETS), autoescape=True, undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True)


def _prepare(out_dir: Path) -> None:
    """An empty or missing folder, or an earlier report (whose own sub-folders are cleared); never anything else."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InspectError(f"{out_dir}: exists and is not a folder (--html)")
    index = out_dir / "index.html"
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not index.is_file() or f'content="{GENERATOR}"' not in index.read_text(encoding="utf-8", errors="replace"):
            raise InspectError(f"{out_dir}: not empty and not an earlier report; choose an empty or new folder (--html)")
        for name in OWNED:
            shutil.rmtree(out_dir / name, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def _page_names(index: RunIndex) -> dict[int, str]:
    """Report-relative page of every readable rollout (a folder name that is not a traj id gets none)."""
    folders = {run: id_from_name(index.label(run)) for run in index.runs}
    return {position: f"rollouts/{folders[rollout.run_dir]}/{rollout.traj_id}.html"
            for position, rollout in enumerate(index.rollouts) if not rollout.error}


def _sft_label(steps: list[StepView]) -> str:
    weights = [step.weight for step in steps if step.weight is not None]
    return f"{weights.count(1)} trained, {weights.count(0)} masked" if weights else ""


def _row(index: RunIndex, rollout: Rollout, page: str | None, sft: str, judge: str) -> dict[str, Any]:
    drawn = rollout.switch_step_drawn
    return {"run": index.label(rollout.run_dir), "traj_id": rollout.traj_id, "page": page, "error": rollout.error,
            "kind": rollout.kind, "exit": rollout.exit_status or "-", "resolved": rollout.resolved_label,
            "switch": rollout.switch_label, "switch_sort": "" if drawn is None else drawn,
            "student_steps": rollout.steps.get("student", 0), "expert_steps": rollout.steps.get("expert", 0),
            "cost": rollout.cost_items, "cost_sort": sum(rollout.cost.values()), "sft": sft, "judge": judge}


def _copy_analysis(out_dir: Path, files: list[AnalysisFile]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    images, data = [], []
    for item in files:
        href = f"analysis/{item.name.as_posix()}" if item.copied else ""
        if item.copied:
            (out_dir / href).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item.source, out_dir / href)
        entry = {"name": item.name.as_posix(), "href": href, "source": str(item.source)}
        (images if item.is_image and item.copied else data).append(entry)
    return images, data


def _script_source(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return f"'sha256-{digest}'"


def _neighbours(pages: dict[int, str]) -> dict[int, dict[str, str | None]]:
    """Links from each rollout page to the previous and next one, in index order."""
    order = sorted(pages)
    links = [f"../../{pages[position]}" for position in order]
    return {position: {"previous": links[at - 1] if at > 0 else None, "next": links[at + 1] if at + 1 < len(links) else None}
            for at, position in enumerate(order)}


def _rollout_page(env: jinja2.Environment, index: RunIndex, rollout: Rollout, loaded: LoadedRollout,
                  verdict: Verdict | None, **common: Any) -> str:
    tests = sorted((rollout.report.tests_status if rollout.report else {}).items(), key=lambda item: TEST_ORDER.get(item[0], 9))
    return env.get_template("rollout.html.j2").render(
        **common, script_source="'none'", rollout=rollout, run_label=index.label(rollout.run_dir), home="../../index.html",
        steps=loaded.steps, error=loaded.error, problem=loaded.problem_statement, sft=_sft_label(loaded.steps),
        verdict=verdict, tests=[(kind, results) for kind, results in tests
                                if isinstance(results, dict) and (results.get("success") or results.get("failure"))],
        switches=[step.index for step in loaded.steps if step.handover is not None], fold_lines=FOLD_LINES)


def write_report(out_dir: Path, index: RunIndex, extras: Extras, default_role: ModelRole) -> Path:
    """Write the whole report folder; returns the path of its `index.html`."""
    _prepare(out_dir)
    env = _environment()
    css, script = (ASSETS / "report.css").read_text(encoding="utf-8"), (ASSETS / "index.js").read_text(encoding="utf-8")
    pages = _page_names(index)
    neighbours = _neighbours(pages)
    rows = []
    for position, rollout in enumerate(index.rollouts):
        page = pages.get(position)
        loaded = load_steps(rollout, extras.sft, default_role) if page else LoadedRollout([], rollout.error)
        verdict = extras.verdicts.for_file(rollout.path)
        if page:
            write_text_atomic(out_dir / page, _rollout_page(env, index, rollout, loaded, verdict, css=css,
                                                            generator=GENERATOR, **neighbours[position]))
        rows.append(_row(index, rollout, page, _sft_label(loaded.steps), verdict.category if verdict else ""))
    images, data_files = _copy_analysis(out_dir, extras.analysis)
    choices = {key: sorted({row[key] for row in rows}) for key in ("kind", "exit", "resolved")}
    runs = [{"label": index.label(run), "path": run, "eval_dir": index.eval_dirs.get(run)} for run in index.runs]
    html = env.get_template("index.html.j2").render(
        css=css, generator=GENERATOR, script=script, script_source=_script_source(script), rows=rows, runs=runs,
        choices=choices, unreadable=sum(1 for rollout in index.rollouts if rollout.error), seconds=index.seconds,
        problems=extras.problems, images=images, data_files=data_files)
    write_text_atomic(out_dir / "index.html", html)
    return out_dir / "index.html"
