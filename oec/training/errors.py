"""The one error type of training: bad input or config, reported in one line with exit status 2."""

from sweagent.utils.errors import OECError



class TrainingError(OECError):
    """Unusable training input; the message names the file (and row) or the config key, and what was expected."""
