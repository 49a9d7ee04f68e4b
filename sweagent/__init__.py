"""OEC's agent: SWE-agent 1.x semantics (configs, tools, trajectories) with on-policy expert corrections."""

__version__ = "oec-0.1.0"

import os as _os

# SWE-ReX logs every sandbox start at DEBUG on the console; keep the console for progress and results.
_os.environ.setdefault("SWE_REX_LOG_STREAM_LEVEL", "WARNING")
# litellm prints an INFO line per request to stdout; errors still surface as exceptions.
_os.environ.setdefault("LITELLM_LOG", "ERROR")
