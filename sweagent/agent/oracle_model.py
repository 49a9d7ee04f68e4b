"""An oracle expert that knows the instance's fix, for demos and end-to-end tests (never for real training data).

Small local models rarely fix a bug, so a laptop run would produce almost no resolved OEC trajectories. The oracle
acts like a competent engineer in the agent's own tool format: it looks at the state the student left, restores
the starting state, reads the buggy code, applies the fix with the editor (falling back to `git apply` when an edit
does not match), runs the tests that are present, and submits. It is deterministic and free, and every turn it
takes is recorded with `model_name: oracle`.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from sweagent.agent.models import InstanceStats, ModelOutput, ReplayExhaustedError
from sweagent.instance import find_instance
from sweagent.tools.parsing import FunctionCallingParser, ToolCall

EDIT_TOOL = "str_replace_editor"


class OracleModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["oracle"] = "oracle"
    """An expert that knows the fix (the reverse of the bug patch)."""
    name: str = "oracle"
    """Name recorded in the trajectory; keep "oracle" in it so the SFT converter can warn about these turns."""
    instances_path: Path = Path("config/demo/instances.json")
    """Instance file holding the bug patch of each instance."""
    max_turns: int = 20
    """Safety bound on the oracle's own turns."""


class OracleModel:
    def __init__(self, config: OracleModelConfig, instance_id: str):
        from sweagent.run.config_loading import resolve_config_path

        self.config = config
        self.name = config.name
        self.stats = InstanceStats()
        self.instance = find_instance(resolve_config_path(config.instances_path), instance_id)
        self._tools: Any = None
        self._plan: list[tuple[str, ToolCall]] | None = None
        self._turn = 0

    def bind_tools(self, tools: Any) -> None:
        """The agent hands over its tool config, so answers come in the format the agent parses."""
        self._tools = tools

    # ---- the plan ---------------------------------------------------------------------------------------------------
    def _bug_patch(self) -> Any:
        """The instance's bug patch parsed (unidiff is imported only by the oracle, not at every rollout's start)."""
        from unidiff import PatchSet

        return PatchSet(self.instance.patch)

    def _fix_hunks(self) -> list[tuple[str, str, str, int]]:
        """(file, buggy text, fixed text, first line) for every hunk of the bug patch, read in reverse."""
        hunks = []
        for patched_file in self._bug_patch():
            for hunk in patched_file:
                buggy = "".join(line.value for line in hunk if not line.is_removed)
                fixed = "".join(line.value for line in hunk if not line.is_added)
                hunks.append((patched_file.path, buggy.rstrip("\n"), fixed.rstrip("\n"), hunk.target_start))
        return hunks

    def _test_files(self) -> list[str]:
        hidden = {test.split("::", 1)[0] for test in self.instance.FAIL_TO_PASS}
        present = sorted({test.split("::", 1)[0] for test in self.instance.PASS_TO_PASS} - hidden)
        return present[:3]

    def _build_plan(self) -> list[tuple[str, ToolCall]]:
        plan: list[tuple[str, ToolCall]] = [(
            "Before changing anything, I want to see what state the repository is in.",
            ToolCall("bash", {"command": "git status --short && git diff --stat"}),
        ), (
            "I'll start from the repository's original state so that earlier experiments do not interfere with the fix.",
            ToolCall("bash", {"command": "git checkout -q -- . && git clean -fdq && git status --short"}),
        )]
        for path, buggy, fixed, line in self._fix_hunks():
            start = max(1, line - 2)
            plan.append((f"The problem described in the issue comes from `{path}`. Let me read the code around line {line}.",
                         ToolCall(EDIT_TOOL, {"command": "view", "path": f"/testbed/{path}", "view_range": [start, line + buggy.count(chr(10)) + 3]})))
            plan.append((f"This code in `{path}` does not do what the issue expects. I'll correct it.",
                         ToolCall(EDIT_TOOL, {"command": "str_replace", "path": f"/testbed/{path}", "old_str": buggy, "new_str": fixed})))
        tests = self._test_files()
        if tests:
            files = " ".join(shlex.quote(test) for test in tests)
            plan.append(("Now I'll run the tests of this module to make sure nothing else broke.",
                         ToolCall("bash", {"command": f"python -m pytest -q -p no:cacheprovider {files} 2>&1 | tail -n 5"})))
        plan.append(("The fix is in place and the tests pass, so I'll submit.", ToolCall("submit", {})))
        return plan

    def _fallback_patch(self) -> ToolCall:
        """When an edit does not match exactly, put the touched files back to their starting state and patch them."""
        files = " ".join(shlex.quote(p.path) for p in self._bug_patch())
        command = (f"git checkout -q -- {files} && git apply -R --whitespace=nowarn <<'OEC_FIX'\n{self.instance.patch}\nOEC_FIX\n"
                   "git diff --stat")
        return ToolCall("bash", {"command": command})

    def _edit_failed(self, messages: list[dict[str, Any]]) -> bool:
        previous = self._plan[self._turn - 1][1] if self._plan and self._turn else None
        last = str(messages[-1].get("content", "")) if messages else ""
        return previous is not None and previous.arguments.get("command") == "str_replace" and "ERROR" in last

    # ---- answering --------------------------------------------------------------------------------------------------
    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> ModelOutput:
        if self._plan is None:
            self._plan = self._build_plan()
        if self._turn >= self.config.max_turns:
            raise ReplayExhaustedError(f"oracle: gave up after {self.config.max_turns} turns")
        if self._edit_failed(messages):
            fallback = ("That edit did not match the file exactly, so I'll apply the change as a patch instead.", self._fallback_patch())
            rest = [step for step in self._plan[self._turn:] if step[1].name != EDIT_TOOL]
            self._plan = [*self._plan[: self._turn], fallback, *rest]
        if self._turn < len(self._plan):
            thought, call = self._plan[self._turn]
        else:  # a review stage (review_on_submit_m) asks for a second submit
            thought, call = "I have reviewed the diff; it is the intended change. Submitting.", ToolCall("submit", {})
        self._turn += 1
        self.stats.api_calls += 1
        return self._render(thought, call, native=tools is not None)

    def _render(self, thought: str, call: ToolCall, native: bool) -> ModelOutput:
        if self._tools is None:
            raise RuntimeError("oracle: bind_tools() was not called, so the answer format is unknown")
        parser = FunctionCallingParser() if native else self._tools.parse_function
        if native:
            call = ToolCall(call.name, call.arguments, id=f"call_oracle_{self._turn}")
        rendered = parser.render(thought, call, self._tools.commands)
        return ModelOutput(content=rendered.content, tool_calls=rendered.tool_calls)
