"""A Python file with long function bodies elided: SWE-agent's `filemap` view, shared by `filemap` and the editor's
USE_FILEMAP view of large files. Parsed with Python's own `ast` (SWE-agent uses tree-sitter), so nothing is installed.

Each elided body (nested ones too) is announced on the line where it starts, as `... eliding lines A-B ...`.
"""

from __future__ import annotations

import ast

MIN_ELIDED = 5
"""A body is elided when its last line is at least this many lines after its first."""


def body_ranges(tree: ast.AST) -> list[tuple[int, int]]:
    """(first, last) 1-based lines of every long function body; the first statement's decorators belong to it."""
    ranges = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first_statement = node.body[0]
            decorators = getattr(first_statement, "decorator_list", [])
            first = min([first_statement.lineno, *(d.lineno for d in decorators)])
            ranges.append((first, node.body[-1].end_lineno or first))
    return [(first, last) for first, last in ranges if last - first >= MIN_ELIDED]


def outline(text: str) -> str:
    """The numbered outline (`{line:6d} {text}`); raises SyntaxError for text that is not Python."""
    ranges = body_ranges(ast.parse(text))
    elided = {line for first, last in ranges for line in range(first, last + 1)}
    rows = [(first, 0, f"... eliding lines {first}-{last} ...") for first, last in ranges]
    rows += [(number, 1, line) for number, line in enumerate(text.splitlines(), start=1) if number not in elided]
    return "\n".join(f"{number:6d} {line}" for number, _, line in sorted(rows))
