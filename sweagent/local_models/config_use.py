"""Which local model servers a run config uses, asked of the loaded config, so scripts start exactly those.

A model uses a local server when its `api_base` points at the server's address: its usual port on this machine,
or the address a script exported for it (`OEC_<NAME>_API_BASE` and the like, which the configs read).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from sweagent.local_models.catalog import MODELS


def _api_bases(data: Any) -> Iterator[str]:
    """Every `api_base` in a config dump: the agent's model, switching members, retry attempts, anywhere."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "api_base" and isinstance(value, str):
                yield value
            else:
                yield from _api_bases(value)
    elif isinstance(data, list):
        for item in data:
            yield from _api_bases(item)


def servers_used(config_dump: dict[str, Any]) -> list[str]:
    """Names of the local models (`student`, `expert`) whose servers the config's models talk to."""
    addresses = {urlsplit(base).netloc for base in _api_bases(config_dump)}
    used = []
    for name, spec in MODELS.items():
        own = {f"127.0.0.1:{spec.default_port}", f"localhost:{spec.default_port}"}
        own |= {urlsplit(value).netloc for key, value in os.environ.items() if key.startswith(f"OEC_{name.upper()}_")}
        if addresses & own:
            used.append(name)
    return used
