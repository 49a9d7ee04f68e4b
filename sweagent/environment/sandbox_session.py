"""The bash session the sandbox server runs: swerex's BashSession (a pexpect pty, PS1 marker, interrupts) with
no fixed pauses and with each command handed to bash whole.

swerex sleeps 0.3 s after spawning bash, checks every command's syntax in two extra processes (`sh -c 'bash -n'`),
splits it with bashlex (falling back to a terminator behind `sleep 0.1` when bashlex cannot parse a heredoc) and
asks for the exit code in a second round trip. Here the command travels as one ANSI-C quoted line (`$'...'`: no
tab, newline, `!` or non-ASCII byte reaches readline raw) and bash parses it twice in-process: once as a function
body that is never called (a syntax error runs nothing and is reported as swerex's BashIncorrectSyntaxError), then
as a `{ ...; }` group evaluated in the shell itself, so cwd, variables and heredocs behave as typed. One line
comes back with the output, the exit code after a per-session marker, and the prompt.
"""

from __future__ import annotations

import os
import re
import secrets

import pexpect
from swerex.exceptions import BashIncorrectSyntaxError, CommandTimeoutError
from swerex.runtime.abstract import BashAction, BashObservation, CloseBashSessionResponse, CreateBashSessionResponse
from swerex.runtime.local import BashSession, _strip_control_chars

_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \"#$%&()*+,-./:;<=>?@[]^_`{|}~")
_ESCAPES = {ord("\\"): "\\\\", ord("'"): "\\'", ord("\n"): "\\n", ord("\t"): "\\t"}


def ansi_c_quoted(text: str) -> str:
    """`text` as a bash `$'...'` word of printable ASCII only (every other byte as \\xHH, `!` too)."""
    parts = []
    for byte in text.encode("utf-8", "surrogatepass"):
        if byte in _SAFE:
            parts.append(chr(byte))
        else:
            parts.append(_ESCAPES.get(byte) or f"\\x{byte:02x}")
    return "$'" + "".join(parts) + "'"


class SandboxBashSession(BashSession):
    def __init__(self, request, *, logger=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(request, logger=logger)
        self._token = secrets.token_hex(8)
        self._ps1 = f"OECPS1{self._token}X"
        """The prompt (swerex's interrupt waits for it too), random per session. PS1 holds it as `OECPS1${token}X`,
        assembled only when bash draws the prompt: no variable, `env` or `set` output contains it whole."""
        self._status = f"OECRC{self._token}X"
        self._status_re = re.compile(re.escape(self._status) + r"(\d+|syntax)Y")

    async def start(self) -> CreateBashSessionResponse:
        """Spawn bash and wait for a marker printed by the first line it runs (no fixed pause)."""
        self._shell = pexpect.spawn("bash", encoding="utf-8", codec_errors="backslashreplace", echo=False, env=dict(os.environ))
        self._shell.delaybeforesend = None  # pexpect's 50 ms pause before each write is for password prompts
        ready = f"OECREADY{secrets.token_hex(8)}"
        commands = [f"source {path}" for path in self.request.startup_source]
        commands += [f"__oec_ps1={self._token}", "PS1='OECPS1${__oec_ps1}X'", "PS2=''", "PS0=''"]  # not exported
        # Printed in two halves so that the marker never appears in the input, should anything echo it.
        self.shell.sendline(" ; ".join([*commands, f"printf '%s%s\\n' {ready[:8]} {ready[8:]}"]))
        self.shell.expect(ready, timeout=self.request.startup_timeout)
        output = _strip_control_chars(self.shell.before)  # type: ignore[arg-type]
        self.shell.expect(self._ps1, timeout=self.request.startup_timeout)
        return CreateBashSessionResponse(output=output)

    def _command_line(self, command: str) -> str:
        quoted = ansi_c_quoted(command)
        status = f"{self._status[:6]}' '{self._status[6:]}"  # split so the input never holds the marker
        return (f"__oec_cmd={quoted}; if eval \"__oec_parse() {{ : ; $__oec_cmd\"$'\\n}}' 2>&1; "
                f"then unset -f __oec_parse; eval \"{{ : ; $__oec_cmd\"$'\\n}}'; printf '%s%s%sY' '{status}' \"$?\"; "
                f"else printf '%s%ssyntaxY' '{status}'; fi")

    async def _run_normal(self, action: BashAction) -> BashObservation:
        """Run one command (any number of lines, heredocs included) and read its output and exit code."""
        self.shell.sendline(self._command_line(action.command))
        expect_strings = action.expect + [self._ps1]
        try:
            index = self.shell.expect(expect_strings, timeout=action.timeout)  # type: ignore[arg-type]
        except pexpect.TIMEOUT as exc:
            raise CommandTimeoutError(f"timeout after {action.timeout} seconds while running command {action.command!r}") from exc
        before = _strip_control_chars(self.shell.before)  # type: ignore[arg-type]
        matched = expect_strings[index]
        statuses = list(self._status_re.finditer(before))
        if matched != self._ps1 or not statuses:  # an `expect` string came first, or the shell was interrupted
            return BashObservation(output=before, exit_code=None, expect_string=matched)
        status = statuses[-1]
        output = before[: status.start()]
        if status[1] == "syntax":
            raise BashIncorrectSyntaxError(
                f"Error (exit code 2) while checking bash command \n{action.command!r}\n---- Stderr ----\n{output}",
                extra_info={"bash_stdout": "", "bash_stderr": output},
            )
        exit_code = None if action.check == "ignore" else int(status[1])
        return BashObservation(output=output, exit_code=exit_code, expect_string=matched)

    async def close(self) -> CloseBashSessionResponse:
        """Close the pty and end bash (pexpect's pauses for that, 0.1 s each, cut to 5 ms)."""
        shell, self._shell = self._shell, None
        if shell is not None:
            shell.ptyproc.delayafterclose = shell.ptyproc.delayafterterminate = 0.005
            try:
                shell.close(force=True)
            except (pexpect.ExceptionPexpect, OSError) as exc:  # the server's exit takes the sandbox down anyway
                self.logger.warning("bash session did not end when closed: %s", exc)
        return CloseBashSessionResponse()
