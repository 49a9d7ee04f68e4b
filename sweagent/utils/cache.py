"""Where OEC keeps downloads and built artefacts: one folder outside the repository, shared by every run."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$OEC_CACHE` or `~/.cache/oec` (weights, sdists, pristine trees, test venvs, embeddings, server state)."""
    return Path(os.environ.get("OEC_CACHE") or Path.home() / ".cache" / "oec").expanduser()
