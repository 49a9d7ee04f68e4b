"""Console logging policy: progress and results on the console, library chatter only when it is a warning."""

from __future__ import annotations

import logging

from sweagent.utils.secrets import redact_standard_streams

NOISY_LIBRARIES = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx", "urllib3", "datasets", "ray")


def quiet_library_loggers() -> None:
    """Undo INFO-level root logging that some dependencies (swebench's inference modules) switch on at import."""
    logging.getLogger().setLevel(logging.WARNING)
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def setup_cli_output() -> None:
    """What every OEC command does first: library INFO off the console, secrets masked in all it prints."""
    quiet_library_loggers()
    redact_standard_streams()
