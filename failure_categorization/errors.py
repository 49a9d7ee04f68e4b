"""The one error type of this stage: bad input that the CLI reports in one line and exits 2 on."""

from sweagent.utils.errors import OECError



class CategorizationError(OECError):
    """Unusable input; the message names the file, the key and what was expected."""
