"""The one error type of this stage: bad input, reported by the CLI in one line with exit status 2."""

from sweagent.utils.errors import OECError



class SFTError(OECError):
    """Bad input for the SFT conversion; the message names the file or option, the key and what was expected."""
