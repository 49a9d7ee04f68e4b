"""Key-value store shared by tool executables inside the environment (a JSON file under $HOME)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REGISTRY_FILE = Path(os.environ.get("SWE_AGENT_ENV_FILE", str(Path.home() / ".swe-agent-env")))


def _load() -> dict[str, Any]:
    try:
        return json.loads(REGISTRY_FILE.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def get(key: str, default: Any = None) -> Any:
    return _load().get(key, default)


def set_value(key: str, value: Any) -> None:
    data = _load()
    data[key] = value
    tmp = REGISTRY_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(REGISTRY_FILE)
