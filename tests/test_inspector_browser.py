"""The inspector as a person uses it: the HTML report in headless Chromium (the rendered DOM after its script ran,
and screenshots), and the terminal app under tmux (keys sent, the pane read back)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from inspector_runs import DemoRun, write_demo_run
from sweagent.inspector.extras import load_extras
from sweagent.inspector.html_report import write_report
from sweagent.inspector.index import build_index

CHROMIUM = next((path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)
TMUX = shutil.which("tmux")
DEADLINE_S = 120.0
"""How long a poll waits for the app (a cold start imports the evaluation stack; minutes on a loaded machine)."""


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoRun:
    return write_demo_run(tmp_path_factory.mktemp("demo"))


def chromium(profile: Path, *args: str) -> str:
    """Run headless Chromium once; returns its stdout (the DOM for --dump-dom)."""
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                           "--disable-extensions", f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=DEADLINE_S)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_report_renders_in_chromium_with_roles_switch_badges_and_working_filters(demo: DemoRun, tmp_path: Path) -> None:
    extras = load_extras([demo.sft], [demo.analysis, demo.judge])
    index = write_report(tmp_path / "report", build_index([demo.run]), extras, "expert")
    profile = tmp_path / "profile"
    # The script runs under the page's CSP: the filter and sort in the URL fragment prove it ran.
    dom = chromium(profile, "--dump-dom", index.as_uri() + "#resolved=resolved&sort=6&order=asc")
    rows = re.findall(r'<tr class="rollout[^"]*"[^>]*>', dom)
    visible = [row for row in rows if " hidden" not in row]
    assert len(rows) == 6 and '<span id="shown">3</span>' in dom
    assert [re.search(r'data-search="([^"]+)"', row).group(1) for row in visible][0] == "pkg__parse-3"  # fewest student steps
    assert all('data-resolved="resolved"' in row for row in visible)
    page = index.parent / "rollouts" / "oec" / "pkg__parse-1__r0.html"
    rendered = chromium(profile, "--dump-dom", page.as_uri())
    assert len(re.findall(r'<article class="step role-student"', rendered)) == 2
    assert len(re.findall(r'<article class="step role-expert"', rendered)) == 3
    assert len(re.findall(r'class="switch-marker"', rendered)) == 1 and "switch: student → expert at step 2" in rendered
    assert len(re.findall(r'class="badge trained"', rendered)) == 3 and len(re.findall(r'class="badge masked"', rendered)) == 2
    assert "<script>alert" not in rendered
    for name, target, size in (("index.png", index, "1400,900"), ("rollout.png", page, "1400,1700")):
        chromium(profile, f"--screenshot={tmp_path / name}", f"--window-size={size}", target.as_uri())
        assert (tmp_path / name).stat().st_size > 20_000  # a rendered page, not a blank one


class Tmux:
    """One tmux server of our own (its own socket), so the test never touches anyone's sessions."""

    def __init__(self, name: str) -> None:
        self.args = [TMUX, "-L", name]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.args, *args], capture_output=True, text=True, check=check, timeout=30)

    def pane(self) -> str:
        return self.run("capture-pane", "-p", "-t", "inspect").stdout

    def wait_until(self, condition: Callable[[str], bool], what: str) -> str:
        """The pane once `condition` holds for it; fails with the pane's last content after the deadline."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            pane = self.pane()
            if condition(pane):
                return pane
            time.sleep(0.2)
        pytest.fail(f"the pane never showed {what}; it shows:\n{self.pane()}")

    def wait_for(self, text: str) -> str:
        return self.wait_until(lambda pane: text in pane, repr(text))

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.run("send-keys", "-t", "inspect", key)


@pytest.mark.skipif(TMUX is None, reason="needs tmux (apt-get install tmux)")
def test_the_terminal_inspector_is_driven_from_the_keyboard(demo: DemoRun, tmp_path: Path) -> None:
    tmux = Tmux(f"oec-inspect-test-{os.getpid()}")
    command = [sys.executable, "-m", "sweagent", "inspect", str(demo.run), "--sft", str(demo.sft), "--analysis", str(demo.judge)]
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "200", "LINES": "50"}
    subprocess.run([*tmux.args, "new-session", "-d", "-s", "inspect", "-x", "200", "-y", "50", *command], env=env, check=True)
    try:
        listed = ("6 rollouts (1 unreadable)", "filter: none · 6 shown", "student+expert", "pkg__broken-1", "unreadable")
        tmux.wait_until(lambda pane: all(text in pane for text in listed), "the filled rollout list")
        tmux.keys("Down", "Down", "Enter")  # rows are sorted by traj id: the mini-swe-agent one, the broken one, r0
        steps = tmux.wait_for("step 0 · student")
        assert "SFT: 3 trained, 2 masked" in steps and "masked" in steps
        tmux.keys("s")  # the current step is the one with the heavy border
        switched = tmux.wait_until(lambda pane: " ┏━  step 2 · expert" in pane, "step 2 as the current step")
        assert "switch: student → expert at step 2" in switched and " ┏━  step 0" not in switched
        assert "more lines (o: unfold)" in tmux.pane()
        tmux.keys("o")
        tmux.wait_for("collected line 20")
        tmux.keys("]")
        tmux.wait_for("pkg__parse-1__r1 (oec)")
        tmux.keys("Escape")  # alone: an escape followed at once by a key reads as Alt+key
        tmux.wait_for("filter: none · 6 shown")
        tmux.keys("v")
        tmux.wait_for("filter: resolved=not evaluated")
        (tmp_path / "pane.txt").write_text(tmux.pane())
        tmux.keys("q")
        deadline = time.monotonic() + DEADLINE_S
        while tmux.run("has-session", "-t", "inspect", check=False).returncode == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert tmux.run("has-session", "-t", "inspect", check=False).returncode != 0
    finally:
        tmux.run("kill-server", check=False)
