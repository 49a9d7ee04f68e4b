"""The open file and its visible window, kept in the tool registry between commands (SWE-agent's `windowed`).

Registry keys: CURRENT_FILE (absolute path), FIRST_LINE (0-based first visible line), WINDOW (lines shown),
OVERLAP (lines kept on screen when scrolling). Line numbers shown to the model are 1-based.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "registry" / "lib"))
import registry  # noqa: E402


class ToolError(Exception):
    """A message for the model; the command prints it and exits non-zero."""


class WindowedFile:
    def __init__(self, path: str | Path | None = None):
        name = path if path is not None else registry.get("CURRENT_FILE", "")
        if not name:
            raise ToolError("No file open. Use the open command first.")
        self.path = Path(name).resolve()
        if self.path.is_dir():
            raise ToolError(f"Error: {self.path} is a directory. You can only open files. Use cd or ls to navigate directories.")
        if not self.path.exists():
            raise ToolError(f"Error: File {self.path} not found")
        if path is not None:
            registry.set_value("CURRENT_FILE", str(self.path))
        self.window = int(registry.get("WINDOW", 100) or 100)
        self.overlap = int(registry.get("OVERLAP", 0) or 0)
        self._first_line = int(registry.get("FIRST_LINE", 0) or 0) if path is None else 0
        self._saved: tuple[str, int] | None = None

    # ---- content ------------------------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        return self.path.read_text(errors="replace")

    def write(self, text: str) -> None:
        """Replace the file's content, remembering the old one for `undo`."""
        self._saved = (self.text, self.first_line)
        self.path.write_text(text)

    def undo(self) -> None:
        assert self._saved is not None, "undo without an edit"
        text, first_line = self._saved
        self.path.write_text(text)
        self.first_line = first_line

    @property
    def n_lines(self) -> int:
        return len(self.text.splitlines())

    # ---- the window -----------------------------------------------------------------------------------------------
    @property
    def first_line(self) -> int:
        return self._first_line

    @first_line.setter
    def first_line(self, value: float) -> None:
        """Clamped so that the window stays inside the file; stored for the next command."""
        self._first_line = max(0, min(int(value), self.n_lines - 1 - self.window))
        registry.set_value("FIRST_LINE", self._first_line)

    @property
    def line_range(self) -> tuple[int, int]:
        """First and last visible line, 0-based and inclusive."""
        return self.first_line, min(self.first_line + self.window - 1, self.n_lines - 1)

    def goto(self, line: int) -> None:
        """Show 0-based `line` a sixth of a window below the top, so some context above it stays visible."""
        self.first_line = line - self.window / 6

    def scroll(self, lines: int) -> None:
        step = lines - self.overlap if lines > 0 else lines + self.overlap
        self.first_line = self.first_line + step

    def window_text(self) -> str:
        start, end = self.line_range
        return "\n".join(self.text.split("\n")[start : end + 1])

    def render(self) -> str:
        """What the model sees: path and length, lines above, the numbered window, lines below."""
        start, end = self.line_range
        total = self.n_lines
        out = [f"[File: {self.path} ({total} lines total)]"]
        if start > 0:
            out.append(f"({start} more lines above)")
        lines = self.text.split("\n")[start : end + 1]
        out += [f"{start + offset + 1}:{line}" for offset, line in enumerate(lines)]
        if end < total - 1:
            out.append(f"({total - end - 1} more lines below)")
        return "\n".join(out)

    def replace_lines(self, start: int, end: int, new_text: str) -> None:
        """Lines `start`..`end` (0-based, inclusive) become `new_text` (nothing when it is empty)."""
        lines = self.text.split("\n")
        lines[start : end + 1] = new_text.split("\n") if new_text else []
        self.write("\n".join(lines))

    def line_of(self, offset: int, text: str | None = None) -> int:
        """0-based line of a character offset in `text` (default: the file)."""
        return (self.text if text is None else text)[:offset].count("\n")

    def occurrences(self, search: str) -> list[int]:
        """1-based lines where `search` starts, every occurrence in the file."""
        text, found, start = self.text, [], 0
        while (index := text.find(search, start)) != -1:
            found.append(self.line_of(index, text) + 1)
            start = index + max(len(search), 1)
        return found


def run(main) -> None:  # type: ignore[no-untyped-def]
    """Run a command's `main(argv)`; a ToolError is printed for the model and ends the command with status 1."""
    try:
        code = main(sys.argv[1:])
    except ToolError as exc:
        print(exc)
        sys.exit(1)
    sys.exit(code or 0)


def scroll_command(direction: int) -> None:
    """`scroll_up` (-1) and `scroll_down` (+1): move the open file's window by one window, minus the overlap."""

    def main(argv: list[str]) -> int:
        wf = WindowedFile()
        wf.scroll(direction * wf.window)
        print(wf.render())
        return 0

    run(main)


def split_arguments(argv: list[str], options: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Positional words and `--option value` pairs (OEC's command-line rule for function calls; SWE-agent's text
    form is positional). `options` maps each accepted spelling to its name; the word after an option is its value
    even when it starts with `-`."""
    positional: list[str] = []
    values: dict[str, str] = {}
    index = 0
    while index < len(argv):
        word = argv[index]
        name = options.get(word.split("=", 1)[0]) if word.startswith("--") else None
        if name is None:
            positional.append(word)
        elif "=" in word:
            values[name] = word.split("=", 1)[1]
        elif index + 1 < len(argv):
            values[name] = argv[index + 1]
            index += 1
        else:
            values[name] = ""
        index += 1
    return positional, values


def parse_int(word: str, usage: str, what: str) -> int:
    try:
        return int(word)
    except ValueError:
        raise ToolError(f"{usage}\nError: {what} must be a number") from None
