"""OEC's agent: SWE-agent 1.x semantics (configs, tools, trajectories) with on-policy expert corrections."""

from __future__ import annotations

import os as _os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__version__ = "oec-0.1.0"


def __getattr__(name: str) -> Path:
    """`REPO_ROOT`, the OEC checkout: bundled configs, tool bundles and the demo task set are found from here (the
    one definition). Made on first use, so the sandbox server, which never needs it, starts without pathlib."""
    if name != "REPO_ROOT":
        raise AttributeError(f"module 'sweagent' has no attribute {name!r}")
    from pathlib import Path

    root = globals()["REPO_ROOT"] = Path(__file__).resolve().parents[1]
    return root


# SWE-ReX logs every sandbox start at DEBUG on the console; keep the console for progress and results.
_os.environ.setdefault("SWE_REX_LOG_STREAM_LEVEL", "WARNING")
# litellm prints an INFO line per request to stdout; errors still surface as exceptions.
_os.environ.setdefault("LITELLM_LOG", "ERROR")
# pydantic scans every installed package's entry points for plugins when it builds its first validator (about 10 ms
# of each process's start); OEC uses none. Set PYDANTIC_DISABLE_PLUGINS to something else (even empty) to load them.
_os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
