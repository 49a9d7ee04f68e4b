"""The persistent bash session of the sandbox server: swerex's BashSession semantics (a pexpect pty, a PS1 marker,
exit codes, timeouts, interrupts that keep the shell), in our own code, with no fixed pause anywhere.

Bash runs without line editing on a terminal in non-canonical input mode: readline reads its input one byte per
system call (about 3 µs a byte here: a 30 kB file-writing command spent 0.1 s in it, a 300-byte one 1 ms), while
bash without it reads whole blocks; the terminal's canonical mode would cut a line at 4095 bytes, so the session
turns it off, and turns it (and echo) off again before a command if an earlier one (`stty sane`, an editor) turned
it back on.

swerex sleeps 0.3 s after spawning bash, checks every command's syntax in two extra processes (`sh -c 'bash -n'`),
splits it with bashlex (falling back to a terminator behind `sleep 0.1` when bashlex cannot parse a heredoc), asks
for the exit code in a second round trip and sleeps 0.5 s after an interrupt. Here a command travels as one ANSI-C
quoted line (`$'...'`: no tab, newline, `!`, control or non-ASCII byte reaches the terminal raw) and bash parses it twice,
in-process: once as the body of a function that is never called (a syntax error runs nothing and becomes swerex's
BashIncorrectSyntaxError), then as a `{ ...; }` group evaluated by the shell itself, so cwd, variables and heredocs
behave as typed. The output, the exit code behind a per-session marker, and the prompt come back in one read.
Wherever the shell's state is unknown (start, after an interrupt) a fresh marker is printed and awaited.
Observations are plain dicts in the shape of swerex's BashObservation, which the host validates.
"""

from __future__ import annotations

import os
import re
import signal
import termios
import time

from typing import Any

import pexpect
from swerex.exceptions import BashIncorrectSyntaxError, CommandTimeoutError, NonZeroExitCodeError

_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \"#$%&()*+,-./:;<=>?@[]^_`{|}~")
_ESCAPES = {ord("\\"): "\\\\", ord("'"): "\\'", ord("\n"): "\\n", ord("\t"): "\\t"}
_ANSI_ESCAPE = re.compile(r"\x1B[@-_][0-?]*[ -/]*[@-~]")
_READ_BYTES = 65536
"""Most a read from the terminal takes at once (pexpect reads 2000 by default: a 15 kB `cat` took eight reads)."""


def ansi_c_quoted(text: str) -> str:
    """`text` as a bash `$'...'` word of printable ASCII only (every other byte as \\xHH, `!` too)."""
    parts = []
    for byte in text.encode("utf-8", "surrogatepass"):
        parts.append(chr(byte) if byte in _SAFE else _ESCAPES.get(byte) or f"\\x{byte:02x}")
    return "$'" + "".join(parts) + "'"


def _printed(marker: str) -> str:
    """A printf that prints `marker` without the input holding it whole (nothing can match it by echoing input)."""
    return f"printf '%s%s' '{marker[:6]}' '{marker[6:]}'"


def _clean(text: str | None) -> str:
    """Terminal output as the model should read it: no escape sequences, \\n line ends."""
    return _ANSI_ESCAPE.sub("", text or "").replace("\r\n", "\n")


def _observation(output: str, exit_code: int | None, expect_string: str) -> dict[str, Any]:
    return {"output": output, "exit_code": exit_code, "failure_reason": "", "expect_string": expect_string, "session_type": "bash"}


class SandboxBashSession:
    def __init__(self, startup_source: list[str], startup_timeout: float) -> None:
        self._startup_source = startup_source
        self._startup_timeout = startup_timeout
        self._token = os.urandom(8).hex()
        self._ps1 = f"OECPS1{self._token}X"
        """The prompt, random per session. PS1 holds it as `OECPS1${__oec_ps1}X`, assembled only when bash draws
        the prompt, so no variable, `env` or `set` output contains it whole."""
        self._status = f"OECRC{self._token}X"
        self._status_re = re.compile(re.escape(self._status) + r"(\d+|syntax)Y")
        self._shell: pexpect.spawn | None = None

    @property
    def shell(self) -> pexpect.spawn:
        if self._shell is None:
            raise RuntimeError("the bash session is closed")
        return self._shell

    def start(self) -> str:
        """Spawn bash, set the prompt, and wait until it has run that line; returns what the setup printed."""
        self._shell = pexpect.spawn("bash", ["--noediting"], encoding="utf-8", codec_errors="backslashreplace", echo=False,
                                    env=dict(os.environ), maxread=_READ_BYTES)
        self._shell.delaybeforesend = None  # pexpect's 50 ms pause before each write is for password prompts
        self._shell.delayafterread = None  # and its pause after every read (0.1 ms asked, more slept) adds up per chunk
        setup = [f"source {path}" for path in self._startup_source]
        setup += [f"__oec_ps1={self._token}", "PS1='OECPS1${__oec_ps1}X'", "PS2=''", "PS0=''"]  # none exported
        return self._sync(" ; ".join(setup), self._startup_timeout)

    def _send(self, line: str) -> None:
        """Type `line` and Enter as one line of non-canonical input, not echoed (the pty's settings are the master's
        to change too; a command may have turned either back on)."""
        attributes = termios.tcgetattr(self.shell.child_fd)
        if attributes[3] & (termios.ICANON | termios.ECHO):
            attributes[3] &= ~(termios.ICANON | termios.ECHO)
            attributes[6][termios.VMIN], attributes[6][termios.VTIME] = 1, 0
            termios.tcsetattr(self.shell.child_fd, termios.TCSANOW, attributes)
        self.shell.sendline(line)

    def _sync(self, line: str, timeout: float) -> str:
        """Run `line`, then wait for a fresh marker and the prompt after it; returns what came before the marker."""
        ready = f"OECREADY{os.urandom(8).hex()}"
        self._send(f"{line} ; {_printed(ready)}" if line else _printed(ready))
        self.shell.expect(ready, timeout=timeout)
        before = _clean(self.shell.before)  # type: ignore[arg-type]
        self.shell.expect(self._ps1, timeout=timeout)
        return before

    def run(self, command: str, *, timeout: float | None, check: str = "raise", error_msg: str = "",
            expect: list[str] = ()) -> dict[str, Any]:
        """Run one command (any number of lines, heredocs included); swerex's BashAction semantics for `check`."""
        observation = self._run(command, timeout, check, list(expect))
        if check == "raise" and observation["exit_code"] != 0:
            message = f"Command {command!r} failed with exit code {observation['exit_code']}. Here is the output:\n{observation['output']!r}"
            raise NonZeroExitCodeError(f"{error_msg}: {message}" if error_msg else message)
        return observation

    def _command_line(self, command: str) -> str:
        status = f"'{self._status[:6]}' '{self._status[6:]}'"
        return (f"__oec_cmd={ansi_c_quoted(command)}; if eval \"__oec_parse() {{ : ; $__oec_cmd\"$'\\n}}'; "
                f"then unset -f __oec_parse; eval \"{{ : ; $__oec_cmd\"$'\\n}}'; printf '%s%s%sY' {status} \"$?\"; "
                f"else printf '%s%ssyntaxY' {status}; fi")

    def _run(self, command: str, timeout: float | None, check: str, expect: list[str]) -> dict[str, Any]:
        self._send(self._command_line(command))
        expect_strings = expect + [self._ps1]
        try:
            index = self.shell.expect(expect_strings, timeout=timeout)
        except pexpect.TIMEOUT as exc:
            raise CommandTimeoutError(f"timeout after {timeout} seconds while running command {command!r}") from exc
        before, matched = _clean(self.shell.before), expect_strings[index]  # type: ignore[arg-type]
        statuses = list(self._status_re.finditer(before))
        if matched != self._ps1 or not statuses:  # an `expect` string came first
            return _observation(before, None, matched)
        status = statuses[-1]
        output = before[: status.start()]
        if status[1] == "syntax":
            raise BashIncorrectSyntaxError(
                f"Error (exit code 2) while checking bash command \n{command!r}\n---- Stderr ----\n{output}",
                extra_info={"bash_stdout": "", "bash_stderr": output},
            )
        return _observation(output, None if check == "ignore" else int(status[1]), matched)

    def interrupt(self, *, timeout: float, n_retry: int) -> dict[str, Any]:
        """Ctrl-C (a few times) until the command has ended, else SIGKILL its process group; the shell, cwd and
        variables stay. That it ended is read off the terminal (its foreground process group is bash's again), not off
        a prompt: a Ctrl-C sent after a slow prompt would reach readline and leave stray prompts behind. A job is never
        suspended (Ctrl-Z), so none stays in bash's job table to print a late `[1]+ Killed` into a later output."""
        for _ in range(n_retry):
            self.shell.sendintr()  # bash itself may be busy (a builtin loop): the first Ctrl-C always goes
            if self._foreground_is_shell(timeout):
                break
        else:
            self._kill_foreground()
        output = self._sync("", timeout=max(timeout, 5))
        # The interrupted command's status and prompts are in there: never show a marker (one seen can be forged).
        output = self._status_re.sub("", output).replace(self._ps1, "")
        return _observation(output.strip(), 0, self._ps1)

    def _foreground_group(self) -> int | None:
        try:
            return os.tcgetpgrp(self.shell.child_fd)  # Linux answers for the pty's other side
        except OSError:
            return None

    def _foreground_is_shell(self, timeout: float) -> bool:
        """Whether bash holds the terminal again (the command's process group has ended) within `timeout` s."""
        deadline = time.monotonic() + timeout
        while self._foreground_group() not in (self.shell.pid, None):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def _kill_foreground(self) -> None:
        group = self._foreground_group()
        if group not in (self.shell.pid, None):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it ended on its own meanwhile

    def close(self) -> None:
        """Close the pty and end bash (pexpect's pauses for that, 0.1 s each, cut to 5 ms)."""
        shell, self._shell = self._shell, None
        if shell is not None:
            shell.ptyproc.delayafterclose = shell.ptyproc.delayafterterminate = 0.005
            try:
                shell.close(force=True)
            except (pexpect.ExceptionPexpect, OSError):
                pass  # the server's exit takes the sandbox, and this bash, down anyway
