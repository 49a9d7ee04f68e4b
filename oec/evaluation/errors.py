"""The evaluation stage's one error type: bad input, named by file, key and what was expected."""

from __future__ import annotations
from sweagent.utils.errors import OECError


class EvaluationError(OECError):
    """Bad evaluation input (run dir, instances file, option); the CLI prints the message and exits 2."""
