"""The terminal inspector (textual): a rollout list and a step view, driven from the keyboard, fine over ssh.

Every text shown is a rich `Text` (never markup), so nothing a model wrote can style or break the screen.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from sweagent.inspector.extras import Extras
from sweagent.inspector.index import Rollout, RolloutFilter, RunIndex, next_choice
from sweagent.inspector.steps import StepView, fold, load_steps, printable
from sweagent.trajectory import ModelRole

ROLE_COLOURS = {"student": "magenta", "expert": "cyan"}
KIND_STYLES = {"student only": "magenta", "expert only": "cyan", "student+expert": "bold", "unreadable": "bold red"}
FOLD_LINES = 12
"""Observations longer than this show their first and last lines until `o` unfolds them."""
PROBLEM_LINES = 6
COLUMNS = ("run", "traj id", "models", "exit status", "resolved", "switch drawn/taken", "steps", "cost / why unreadable")

CSS = """
#summary { padding: 0 1; background: $panel; }
#filter { padding: 0 1; color: $text-muted; }
.step { margin: 0 1 1 1; padding: 0 1; }
.step.student { border: round magenta; }
.step.expert { border: round cyan; }
.step.current { background: $boost; border: heavy yellow; }
.handover { margin: 0 1; text-style: bold; color: $warning; }
.problem { margin: 0 1 1 1; padding: 0 1; border: round $secondary; color: $text-muted; }
"""


def _text(text: str, style: str = "") -> Text:
    """Folder names, model names and error messages come from files too: shown printable, never as markup."""
    return Text(printable(text), style=style)


def _row(index: RunIndex, rollout: Rollout) -> list[Text]:
    run, traj_id = _text(index.label(rollout.run_dir)), _text(rollout.traj_id)
    kind = _text(rollout.kind, KIND_STYLES.get(rollout.kind, ""))
    if rollout.error:  # the reason goes last, so a long one never pushes the other columns off screen
        return [run, traj_id, kind, *[Text("")] * 4, _text(rollout.error, "red")]
    resolved_style = {"resolved": "green", "unresolved": "red"}.get(rollout.resolved_label, "dim")
    return [run, traj_id, kind, _text(rollout.exit_status or "-"), _text(rollout.resolved_label, resolved_style),
            _text(rollout.switch_label), _text(rollout.steps_label), _text(rollout.cost_label)]


class RolloutList(Screen):
    """Every rollout; Enter opens one, r/e/v cycle the filters."""

    BINDINGS = [Binding("r", "cycle('kind')", "models"), Binding("e", "cycle('exit_status')", "exit status"),
                Binding("v", "cycle('resolved')", "resolved"), Binding("q", "app.quit", "quit")]

    def __init__(self, index: RunIndex, extras: Extras, default_role: ModelRole) -> None:
        super().__init__()
        self.index, self.extras, self.default_role = index, extras, default_role
        self.filter = RolloutFilter()
        self.shown: list[Rollout] = []

    def compose(self) -> ComposeResult:
        rollouts = self.index.rollouts
        unreadable = sum(1 for rollout in rollouts if rollout.error)
        runs = ", ".join(str(run) for run in self.index.runs)
        yield Static(_text(f"{len(rollouts)} rollouts ({unreadable} unreadable) in {runs}"), id="summary")
        yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Static(id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.refill()

    def refill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self.shown = [rollout for rollout in self.index.rollouts if self.filter.accepts(rollout)]
        for number, rollout in enumerate(self.shown):
            table.add_row(*_row(self.index, rollout), key=str(number))
        self.query_one("#filter", Static).update(_text(f"{self.filter.describe()} · {len(self.shown)} shown · "
                                                       "Enter: open"))

    def action_cycle(self, name: str) -> None:
        values = {"kind": lambda r: r.kind, "exit_status": lambda r: r.exit_status or "-",
                  "resolved": lambda r: r.resolved_label}[name]
        setattr(self.filter, name, next_choice(getattr(self.filter, name), [values(r) for r in self.index.rollouts]))
        self.refill()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if self.shown:
            self.app.push_screen(RolloutView(self.index, self.shown, event.cursor_row, self.extras, self.default_role))


def _summary(index: RunIndex, rollout: Rollout, steps: list[StepView], extras: Extras) -> Text:
    parts = [f"{rollout.traj_id} ({index.label(rollout.run_dir)})", f"exit: {rollout.exit_status or '-'}",
             rollout.resolved_label, f"switch drawn/taken: {rollout.switch_label}", rollout.steps_label,
             f"cost: {rollout.cost_label}"]
    weights = [step.weight for step in steps if step.weight is not None]
    if weights:
        parts.append(f"SFT: {weights.count(1)} trained, {weights.count(0)} masked")
    verdict = extras.verdicts.for_file(rollout.path)
    if verdict is not None:
        parts.append(f"judge: {verdict.category}")
    return _text(" · ".join(parts))


def _step_text(step: StepView, unfold: bool) -> Text:
    text = Text()
    if step.thought:
        text.append(step.thought + "\n", style="italic")
    text.append("$ " + (step.action or "(no action)") + "\n", style="bold")
    head, tail, hidden = fold(step.observation, FOLD_LINES) if not unfold else (step.observation, "", 0)
    text.append(head, style="dim")
    if hidden:
        text.append(f"\n… {hidden} more lines (o: unfold) …\n", style="bold yellow")
        text.append(tail, style="dim")
    return text


def _step_title(step: StepView) -> Text:
    title = Text(f" step {step.index} · ")
    title.append(step.role, style=f"bold {ROLE_COLOURS.get(step.role, 'white')}")
    title.append(f" · {step.model_name or '?'} ")
    if step.weight is not None:
        title.append(" trained " if step.weight else " masked ", style="reverse green" if step.weight else "reverse")
    return title


class RolloutView(Screen):
    """One rollout's steps, role-coloured, with a marker wherever control changed hands."""

    BINDINGS = [Binding("n", "step(1)", "next step"), Binding("p", "step(-1)", "prev step"),
                Binding("j", "step(1)", show=False), Binding("k", "step(-1)", show=False),
                Binding("s", "switch", "next switch"),
                Binding("right_square_bracket", "rollout(1)", "next rollout", key_display="]"),
                Binding("left_square_bracket", "rollout(-1)", "prev rollout", key_display="["),
                Binding("o", "toggle_fold", "fold"), Binding("escape,backspace", "app.pop_screen", "back"),
                Binding("q", "app.quit", "quit")]

    def __init__(self, index: RunIndex, rollouts: list[Rollout], position: int, extras: Extras,
                 default_role: ModelRole) -> None:
        super().__init__()
        self.index, self.rollouts, self.position = index, rollouts, position
        self.extras, self.default_role = extras, default_role
        self.steps: list[StepView] = []
        self.current = 0
        self.unfold = False

    def compose(self) -> ComposeResult:
        yield Static(id="summary")
        yield VerticalScroll(id="steps")
        yield Footer()

    async def on_mount(self) -> None:
        await self.show_rollout()

    async def show_rollout(self) -> None:
        rollout = self.rollouts[self.position]
        loaded = load_steps(rollout, self.extras.sft, self.default_role)
        self.steps, error = loaded.steps, loaded.error
        self.current = 0
        self.query_one("#summary", Static).update(_summary(self.index, rollout, self.steps, self.extras))
        container = self.query_one("#steps", VerticalScroll)
        await container.remove_children()
        widgets: list[Static] = []
        if error:
            widgets.append(Static(_text(f"cannot show this rollout: {error}", "bold red")))
        elif not self.steps:
            widgets.append(Static(Text("no steps recorded")))
        if loaded.problem_statement:  # its opening lines: the task, as the model saw it
            lines = loaded.problem_statement.splitlines()
            problem = Static(_text("\n".join(lines[:PROBLEM_LINES]) + (f"\n… {len(lines) - PROBLEM_LINES} more lines"
                                                                        if len(lines) > PROBLEM_LINES else "")),
                             classes="problem")
            problem.border_title = "problem statement"
            widgets.append(problem)
        for step in self.steps:
            if step.handover is not None:
                widgets.append(Static(Text(f"━━━━ switch: {step.handover.label} at step {step.index} ━━━━"),
                                      classes="handover", id=f"switch-{step.index}"))
            widget = Static(_step_text(step, self.unfold), classes=f"step {step.role}", id=f"step-{step.index}")
            widget.border_title = _step_title(step)
            widgets.append(widget)
        await container.mount_all(widgets)
        self.highlight()

    def highlight(self) -> None:
        for widget in self.query(".step"):
            widget.set_class(widget.id == f"step-{self.current}", "current")
        if self.steps:  # a step that follows a hand-over is shown with its switch marker above it
            marker = self.query(f"#switch-{self.current}")
            target = marker.first() if marker else self.query_one(f"#step-{self.current}")
            self.query_one("#steps", VerticalScroll).scroll_to_widget(target, top=True)

    def action_step(self, delta: int) -> None:
        if self.steps:
            self.current = max(0, min(len(self.steps) - 1, self.current + delta))
            self.highlight()

    def action_switch(self) -> None:
        """The next hand-over after the current step, wrapping round to the first."""
        switches = [step.index for step in self.steps if step.handover is not None]
        if switches:
            self.current = next((index for index in switches if index > self.current), switches[0])
            self.highlight()
        else:
            self.notify("no switch in this rollout")

    async def action_rollout(self, delta: int) -> None:
        self.position = (self.position + delta) % len(self.rollouts)
        await self.show_rollout()

    def action_toggle_fold(self) -> None:
        self.unfold = not self.unfold
        for step in self.steps:
            self.query_one(f"#step-{step.index}", Static).update(_step_text(step, self.unfold))


class InspectorApp(App):
    """`sweagent inspect` in a terminal."""

    CSS = CSS
    TITLE = "sweagent inspect"

    def __init__(self, index: RunIndex, extras: Extras, default_role: ModelRole) -> None:
        super().__init__()
        self.first_screen = RolloutList(index, extras, default_role)

    def on_mount(self) -> None:
        self.push_screen(self.first_screen)
