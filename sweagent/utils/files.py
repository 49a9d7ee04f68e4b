"""Atomic file writes: every stage writes results this way so a kill never leaves half a file, and no secret."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from sweagent.utils.secrets import redact_text


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` with secrets masked (every text result passes here) via a temporary file and an atomic rename."""
    write_bytes_atomic(path, redact_text(text).encode("utf-8"))


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder and an atomic rename (plots, binaries)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600 files; results are meant to be shared
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, data: Any, indent: int | None = 2) -> None:
    """Serialise `data` as JSON and write it atomically."""
    write_text_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")
