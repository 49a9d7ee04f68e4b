"""The one module that reads and writes `.traj` files; every pipeline stage goes through it.

The layout is SWE-agent 1.x's (`trajectory`, `history`, `info`, `replay_config`, `environment`) plus the OEC
fields: `model_role`/`model_name` on steps and assistant messages and `info.oec` with the switch point.
Plain SWE-agent trajectories (no roles, no `info.oec`) and mini-swe-agent's `<id>/<id>.traj.json` (converted by
`sweagent.mini_trajectory`) load as single-model trajectories whose role the caller states, so existing expert
trajectories serve directly as the imitation-learning baseline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sweagent.ids import check_id
from sweagent.mini_trajectory import is_mini_swe_agent, to_swe_agent_layout
from sweagent.utils.errors import describe_validation_error
from sweagent.utils.files import write_json_atomic

ModelRole = Literal["student", "expert"]
TRAJ_SUFFIX = ".traj"
MINI_TRAJ_SUFFIX = ".traj.json"
"""mini-swe-agent's trajectory files (`<id>/<id>.traj.json`), read but never written here."""
_ROLLOUT_RE = re.compile(r"^(?P<iid>.+)__r(?P<rollout>\d+)(?:__b\d+)?$")  # a branch belongs to its rollout


class TrajectoryError(ValueError):
    """A `.traj` file that cannot be read; the message names the file and what is wrong."""


class _Open(BaseModel):
    """Keeps unknown keys so that reading and re-writing a trajectory never loses data."""

    model_config = ConfigDict(extra="allow")


class TrajectoryStep(_Open):
    action: str = ""
    observation: str = ""
    response: str = ""
    thought: str = ""
    execution_time: float = 0.0
    state: dict[str, Any] = Field(default_factory=dict)
    query: list[dict[str, Any]] = Field(default_factory=list)
    extra_info: dict[str, Any] = Field(default_factory=dict)
    model_role: ModelRole | None = None
    model_name: str | None = None


class HistoryMessage(_Open):
    role: str
    content: Any = ""
    agent: str = "main"
    message_type: str = ""
    model_role: ModelRole | None = None

    @property
    def text(self) -> str:
        """The content as plain text (SWE-agent stores some contents as a list of typed parts)."""
        if isinstance(self.content, str):
            return self.content
        if isinstance(self.content, list):
            return "".join(part.get("text", "") for part in self.content if isinstance(part, dict))
        return "" if self.content is None else str(self.content)


class ModelInfo(_Open):
    name: str
    stats: dict[str, Any] = Field(default_factory=dict)


class Handover(_Open):
    """One change of the acting model: before step `step`, `to_role` took over from `from_role`."""

    step: int
    from_role: ModelRole
    to_role: ModelRole
    reason: str = "schedule"


class OECInfo(_Open):
    """Where and how control passed between student and expert; the SFT mask is computed from the step roles."""

    switch_type: str
    switch_step_drawn: int | None = None
    switched_at_step: int | None = None
    """The first expert step (null when the expert never acted)."""
    student: ModelInfo
    expert: ModelInfo
    seed: int | None = None
    handovers: list[Handover] = Field(default_factory=list)
    """Every hand-over in order (one for the paper's scheme; several for expert windows and mixing)."""
    draws: dict[str, Any] = Field(default_factory=dict)
    """The schedule's random draws for this rollout (e.g. `switch_step`, `window1`, `gap1`) and its `beta`."""


class TrajectoryInfo(_Open):
    submission: str | None = None
    exit_status: str | None = None
    model_stats: dict[str, Any] = Field(default_factory=dict)
    swe_agent_version: str | None = None
    oec: OECInfo | None = None


class Trajectory(_Open):
    trajectory: list[TrajectoryStep] = Field(default_factory=list)
    history: list[HistoryMessage] = Field(default_factory=list)
    info: TrajectoryInfo = Field(default_factory=TrajectoryInfo)
    replay_config: str | None = None
    environment: str | None = None

    @property
    def switched_at_step(self) -> int | None:
        """Index of the first expert step, or None when the expert never acted."""
        return self.info.oec.switched_at_step if self.info.oec else None

    @property
    def problem_statement(self) -> str | None:
        """The task text, from `replay_config` (SWE-agent 1.x records the run's `problem_statement.text` there)."""
        try:
            replay = json.loads(self.replay_config) if self.replay_config else None
        except json.JSONDecodeError:
            return None
        statement = replay.get("problem_statement") if isinstance(replay, dict) else None
        text = statement.get("text") if isinstance(statement, dict) else None
        return text if isinstance(text, str) else None

    def step_roles(self) -> list[ModelRole | None]:
        return [step.model_role for step in self.trajectory]

    def assistant_messages(self) -> list[HistoryMessage]:
        return [m for m in self.history if m.role == "assistant"]

    def fill_roles(self, default_role: ModelRole) -> None:
        """Give every step and assistant message a role, inferring it where the file has none.

        Steps without a role take it from `info.oec.switched_at_step` when present, else `default_role`
        (a plain SWE-agent trajectory is one model's work). Assistant messages without a role take the role
        of the step they produced, in order.
        """
        switch = self.switched_at_step
        has_oec = self.info.oec is not None
        for index, step in enumerate(self.trajectory):
            if step.model_role is None:
                if has_oec:
                    step.model_role = "expert" if switch is not None and index >= switch else "student"
                else:
                    step.model_role = default_role
        step_roles = self.step_roles()
        for index, message in enumerate(self.assistant_messages()):
            if message.model_role is None:
                message.model_role = step_roles[index] if index < len(step_roles) else (step_roles[-1] if step_roles else default_role)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=False)

    def save(self, path: str | Path) -> None:
        """Write atomically, so a crash mid-write leaves the previous complete version in place."""
        write_json_atomic(path, self.to_json_dict(), indent=2)


def load_trajectory(path: str | Path, default_role: ModelRole = "expert") -> Trajectory:
    """Read a `.traj` file (ours or plain SWE-agent 1.x) or a mini-swe-agent `.traj.json`, every role filled in."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrajectoryError(f"{path}: no such trajectory file") from None
    except OSError as exc:
        raise TrajectoryError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise TrajectoryError(f"{path}: not valid JSON ({exc}); the file is corrupt or truncated") from None
    if is_mini_swe_agent(data):
        try:
            data = to_swe_agent_layout(data)
        except ValueError as exc:
            raise TrajectoryError(f"{path}: {exc}") from None
    elif not isinstance(data, dict) or "trajectory" not in data:
        raise TrajectoryError(f"{path}: expected a JSON object with a 'trajectory' list (SWE-agent .traj layout) "
                              "or a 'messages' list (mini-swe-agent .traj.json)")
    try:
        traj = Trajectory.model_validate(data)
    except ValidationError as exc:
        raise TrajectoryError(f"{path}: {describe_validation_error(exc)}") from None
    traj.fill_roles(default_role)
    return traj


# How `save` lays a file out (json indent=2, every field of every step written): top-level keys at indent 2, step
# keys at indent 6. JSON strings hold no raw newline, so these byte patterns occur nowhere else in such a file.
_OUTLINE_START = b'{\n  "trajectory": ['
_OUTLINE_HISTORY = b'\n  "history": ['
_OUTLINE_INFO = b'\n  "info": {'
_STEP_KEYS = (b'\n      "action": ', b'\n      "model_role": ', b'\n      "model_name": ')


def _line_value(raw: bytes, start: int) -> Any:
    """The JSON scalar written from `start` to the end of its line (a step's last keys are one line each)."""
    end = raw.find(b"\n", start)
    return json.loads(raw[start:end if end >= 0 else len(raw)].rstrip(b","))


def _outline_parts(raw: bytes) -> tuple[dict[str, Any], list[tuple[Any, Any]]] | None:
    """(the top-level keys from `info` on, (model_role, model_name) per step) of a file in `save`'s layout, found
    without parsing the steps; None for any other layout or a truncated file."""
    history_at, info_at = raw.rfind(_OUTLINE_HISTORY), raw.rfind(_OUTLINE_INFO)
    if not raw.startswith(_OUTLINE_START) or not 0 < history_at < info_at:
        return None
    action_key, role_key, name_key = _STEP_KEYS
    starts, found = [], raw.find(action_key, 0, history_at)
    while found >= 0:
        starts.append(found)
        found = raw.find(action_key, found + 1, history_at)
    if not starts and not raw.startswith(_OUTLINE_START + b"]"):
        return None
    steps = []
    try:
        tail = json.loads(b"{" + raw[info_at:])
        for start, end in zip(starts, starts[1:] + [history_at]):
            role_at, name_at = raw.rfind(role_key, start, end), raw.rfind(name_key, start, end)
            if role_at < 0 or name_at < 0:
                return None
            steps.append((_line_value(raw, role_at + len(role_key)), _line_value(raw, name_at + len(name_key))))
    except (ValueError, RecursionError):
        return None
    return tail, steps


def load_trajectory_outline(path: str | Path, default_role: ModelRole = "expert") -> Trajectory:
    """`info` and every step's role and model name (roles filled in), for an index of many rollouts.

    A file in `save`'s layout is read without parsing its steps, whose `query` copies of the history make a long
    rollout megabytes, so thousands index in seconds; then the steps carry nothing else and `history` is empty.
    Any other file is loaded in full. Raises TrajectoryError as `load_trajectory` does.
    """
    try:
        parts = _outline_parts(Path(path).read_bytes())
    except OSError:
        parts = None
    if parts is not None:
        tail, steps = parts
        try:
            outline = Trajectory(trajectory=[TrajectoryStep(model_role=role, model_name=name) for role, name in steps],
                                 info=TrajectoryInfo.model_validate(tail.get("info")))
        except ValidationError:
            return load_trajectory(path, default_role)
        outline.fill_roles(default_role)
        return outline
    return load_trajectory(path, default_role)


def traj_id_for(instance_id: str, rollout: int | None) -> str:
    """Name of one rollout's folder and files: the instance id, plus `__r<k>` when there are several rollouts."""
    return instance_id if rollout is None else f"{instance_id}__r{rollout}"


def split_traj_id(traj_id: str) -> tuple[str, int | None]:
    """Inverse of `traj_id_for`: (instance_id, rollout or None); a branch `<iid>__r<k>__b<j>` gives its rollout's."""
    match = _ROLLOUT_RE.match(traj_id)
    if match is None:
        return traj_id, None
    return match["iid"], int(match["rollout"])


def traj_path(output_dir: str | Path, traj_id: str) -> Path:
    return Path(output_dir) / traj_id / f"{traj_id}{TRAJ_SUFFIX}"


def find_trajectory_file(run_dir: str | Path, traj_id: str) -> Path | None:
    """The trajectory file of one rollout in a run dir: our `.traj`, else mini-swe-agent's `.traj.json`, else None."""
    folder = Path(run_dir) / traj_id
    return next((p for p in (folder / f"{traj_id}{s}" for s in (TRAJ_SUFFIX, MINI_TRAJ_SUFFIX)) if p.is_file()), None)


def iter_trajectory_files(run_dir: str | Path) -> Iterator[Path]:
    """Every `<run>/<traj_id>/<traj_id>.traj` (or mini-swe-agent's `.traj.json`) in a run directory, sorted by traj
    id; a folder name that is not a traj id stops the reader (later stages build paths and log lines from it)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TrajectoryError(f"{run_dir}: run directory does not exist")
    for child in sorted(run_dir.iterdir()):
        candidate = find_trajectory_file(run_dir, child.name) if child.is_dir() else None
        if candidate is not None:
            check_id(child.name, f"{run_dir}: trajectory folder name", TrajectoryError, traj=True)
            yield candidate
