"""The one error type of this package, so the CLI can turn bad input into a one-line message and exit code 2."""

from __future__ import annotations
from sweagent.utils.errors import OECError


class CovariateShiftError(OECError):
    """Bad input: the message names the file or group, the key and what was expected or is missing."""
