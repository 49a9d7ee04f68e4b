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
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sweagent.ids import check_id
from sweagent.mini_trajectory import is_mini_swe_agent, to_swe_agent_layout
from sweagent.utils.errors import describe_validation_error
from sweagent.utils.files import write_json_atomic
from sweagent.utils.secrets import redact_text
from sweagent.utils.errors import OECError

ModelRole = Literal["student", "expert"]
TRAJ_SUFFIX = ".traj"
MINI_TRAJ_SUFFIX = ".traj.json"
"""mini-swe-agent's trajectory files (`<id>/<id>.traj.json`), read but never written here."""
JOURNAL_SUFFIX = ".journal"
"""`<id>.traj.journal`: the steps a running rollout took since its `.traj` was last written (see TrajectoryWriter)."""
_ROLLOUT_RE = re.compile(r"^(?P<iid>.+)__r(?P<rollout>\d+)(?:__b\d+)?$")  # a branch belongs to its rollout


class TrajectoryError(OECError):
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

    @model_validator(mode="before")
    @classmethod
    def _expand_queries(cls, data: Any) -> Any:
        """Steps saved with compact queries (see `compact_query`) get their full message lists back."""
        if isinstance(data, dict) and isinstance(data.get("trajectory"), list):
            steps = data["trajectory"]
            if any(isinstance(step, dict) and isinstance(step.get("query"), dict) for step in steps):
                history = [m.model_dump() if isinstance(m, BaseModel) else m for m in data.get("history") or []]
                data = {**data, "trajectory": expand_queries(steps, history)}
        return data

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
        """The rollout's own answers; a demonstration's (`is_demo`, SWE-agent's put_demos_in_history) are not."""
        return [m for m in self.history if m.role == "assistant" and not getattr(m, "is_demo", False)]

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
        """The file's content: each step's `query` stored compactly (`compact_query`), everything else as is."""
        data = self.model_dump(mode="json", exclude_none=False, exclude={"trajectory": {"__all__": {"query"}}})
        previous: list[dict[str, Any]] = []
        for step, dumped in zip(self.trajectory, data["trajectory"]):
            query = step.query
            dumped["query"] = compact_query(query, previous, data["history"])
            previous = query
        # `query` back in its place among the step's keys (the outline reader relies on the order of the last ones)
        data["trajectory"] = [{key: dumped[key] for key in TrajectoryStep.model_fields} | dumped for dumped in data["trajectory"]]
        return data

    def save(self, path: str | Path) -> None:
        """Write atomically, so a crash mid-write leaves the previous complete version in place; the rollout's
        journal, which this version includes, is then removed."""
        write_json_atomic(path, self.to_json_dict(), indent=2)
        journal_path(path).unlink(missing_ok=True)


# ---- compact queries ---------------------------------------------------------------------------------------------
# A step's `query` (the messages the model was sent) repeats the previous step's query plus the newest turns, which
# are themselves in `history`; stored in full, a long rollout's file grows with the square of its length. On disk a
# query is therefore `{"prefix_of_previous": n, "messages": [...]}`: the previous step's first n query messages, then
# these, each either a message or `{"history_index": i}` (the model's view of history message i, `api_message`).
# Plain SWE-agent files keep their full lists; both load as full lists.
_PREFIX_KEY, _MESSAGES_KEY, _HISTORY_INDEX_KEY = "prefix_of_previous", "messages", "history_index"


def api_message(message: dict[str, Any]) -> dict[str, Any]:
    """What the model is sent for a history message: role and content, plus its tool calls or tool-call id."""
    api: dict[str, Any] = {"role": message["role"], "content": message["content"]}
    if message.get("tool_calls"):
        api["tool_calls"] = message["tool_calls"]
    if message["role"] == "tool":
        api["tool_call_id"] = message["tool_call_ids"][0]
    return api


def compact_query(query: list[dict[str, Any]], previous: list[dict[str, Any]], history: list[dict[str, Any]]) -> dict[str, Any]:
    """`query` relative to the previous step's and to `history` (the saved history, as dicts)."""
    shared = 0
    for mine, theirs in zip(query, previous):
        if mine != theirs:
            break
        shared += 1
    messages: list[Any] = []
    for index in range(shared, len(query)):
        message = query[index]
        candidate = history[index] if index < len(history) else None
        same = candidate is not None and "role" in candidate and _is_api_form_of(message, candidate)
        messages.append({_HISTORY_INDEX_KEY: index} if same else message)
    return {_PREFIX_KEY: shared, _MESSAGES_KEY: messages}


def _is_api_form_of(message: dict[str, Any], history_message: dict[str, Any]) -> bool:
    try:
        return api_message(history_message) == message
    except (KeyError, IndexError, TypeError):
        return False


def expand_queries(steps: list[Any], history: list[dict[str, Any]]) -> list[Any]:
    """The steps with every compact query replaced by its full message list (ValueError naming the step if broken)."""
    expanded, previous = [], []
    for number, step in enumerate(steps):
        query = step.get("query") if isinstance(step, dict) else None
        if isinstance(query, dict):
            query = _expand_query(query, previous, history, f"trajectory.{number}.query")
            step = {**step, "query": query}
        expanded.append(step)
        previous = query if isinstance(query, list) else []
    return expanded


def _expand_query(query: dict[str, Any], previous: list[Any], history: list[dict[str, Any]], where: str) -> list[Any]:
    shared, messages = query.get(_PREFIX_KEY), query.get(_MESSAGES_KEY)
    if not isinstance(shared, int) or not 0 <= shared <= len(previous) or not isinstance(messages, list):
        raise ValueError(f"{where}: expected {{{_PREFIX_KEY}: 0..{len(previous)}, {_MESSAGES_KEY}: [...]}}, got {str(query)[:200]}")
    full = previous[:shared]
    for message in messages:
        if isinstance(message, dict) and "role" not in message and _HISTORY_INDEX_KEY in message:
            index = message[_HISTORY_INDEX_KEY]
            if not isinstance(index, int) or not 0 <= index < len(history):
                raise ValueError(f"{where}: {_HISTORY_INDEX_KEY} {index!r} is not an index of the {len(history)} history messages")
            try:
                message = api_message(history[index])
            except (KeyError, IndexError, TypeError):
                raise ValueError(f"{where}: history message {index} lacks role, content or tool_call_ids") from None
        full.append(message)
    return full


# ---- saving a running rollout --------------------------------------------------------------------------------------
def journal_path(path: str | Path) -> Path:
    """The journal beside a `.traj` (`<id>.traj.journal`)."""
    path = Path(path)
    return path.with_name(path.name + JOURNAL_SUFFIX)


class TrajectoryWriter:
    """Saves a running rollout at the same cost at step 300 as at step 3.

    The `.traj` is written whole (atomically) at the start, whenever the history is rewritten (a hand-over) and at
    the end; each step in between appends one line to the journal beside it: the step (its query compact), the
    history messages it added and the current `info`. A kill therefore loses at most the step in flight:
    `load_trajectory` replays the journal onto the `.traj`. Journal lines are flushed, not fsynced: a killed
    process's writes survive; the whole-file saves fsync as before.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._journal: IO[str] | None = None
        self._history: list[dict[str, Any]] | None = None
        self._saved_history = 0
        self._saved_steps = 0
        self._last_query: list[dict[str, Any]] = []

    def checkpoint(self, trajectory: Trajectory, history: list[dict[str, Any]]) -> None:
        """Write the whole trajectory; `history` is the live list its `history` was made from."""
        self.close()
        trajectory.save(self.path)
        self._history, self._saved_history, self._saved_steps = history, len(history), len(trajectory.trajectory)
        self._last_query = trajectory.trajectory[-1].query if trajectory.trajectory else []

    def record(self, steps: list[TrajectoryStep], history: list[dict[str, Any]], info: TrajectoryInfo,
               whole: Any) -> None:
        """Save the steps and history added since the last call; `whole()` builds the full Trajectory, used when
        the history was rewritten (a new list, or a shorter one) since the last save."""
        if history is not self._history or len(history) < self._saved_history:
            self.checkpoint(whole(), history)
            return
        new_steps = []
        for step in steps[self._saved_steps:]:
            dumped = step.model_dump(mode="json", exclude={"query"})
            dumped["query"] = compact_query(step.query, self._last_query, history)
            new_steps.append({key: dumped[key] for key in TrajectoryStep.model_fields} | dumped)
            self._last_query = step.query
        line = {"steps_before": self._saved_steps, "history_before": self._saved_history,
                "steps": new_steps, "history": history[self._saved_history:], "info": info.model_dump(mode="json")}
        if self._journal is None:
            self._journal = open(journal_path(self.path), "a", encoding="utf-8")
        self._journal.write(redact_text(json.dumps(line, ensure_ascii=False)) + "\n")
        self._journal.flush()
        self._saved_steps, self._saved_history = len(steps), len(history)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def _replay_journal(data: dict[str, Any], journal: Path) -> dict[str, Any]:
    """`data` (a `.traj`'s JSON) with the journal's steps added; lines the file already holds are skipped and a
    torn last line (the step in flight at a kill) is dropped."""
    steps, history, info = list(data.get("trajectory") or []), list(data.get("history") or []), data.get("info")
    try:
        lines = journal.read_text(encoding="utf-8").splitlines()
    except OSError:
        return data
    for number, raw in enumerate(lines):
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            if number == len(lines) - 1:
                break
            raise ValueError(f"{journal}: line {number + 1} is not valid JSON") from None
        if not isinstance(line, dict) or line.get("steps_before", -1) < len(steps):
            continue  # written before the `.traj` it extends (a kill between a save and the journal's removal)
        if line.get("steps_before") != len(steps) or not 0 <= line.get("history_before", -1) <= len(history):
            raise ValueError(f"{journal}: line {number + 1} continues step {line.get('steps_before')} of a "
                             f"trajectory holding {len(steps)}")
        history = history[: line["history_before"]] + list(line.get("history") or [])
        steps += list(line.get("steps") or [])
        info = line.get("info", info)
    return {**data, "trajectory": steps, "history": history, "info": info}


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
    elif journal_path(path).is_file():  # a rollout that is still running or was killed: its latest steps are there
        try:
            data = _replay_journal(data, journal_path(path))
        except ValueError as exc:
            raise TrajectoryError(str(exc)) from None
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

    A file in `save`'s layout is read without parsing its steps (a long rollout is megabytes), so thousands index
    in seconds; then the steps carry nothing else and `history` is empty. Any other file, and one with a journal
    (a running or killed rollout), is loaded in full. Raises TrajectoryError as `load_trajectory` does.
    """
    try:
        parts = None if journal_path(path).exists() else _outline_parts(Path(path).read_bytes())
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
