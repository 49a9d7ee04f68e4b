"""Shared test setup: offline libraries, and no local model server left running by the suite."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(scope="session", autouse=True)
def _stop_local_servers_started_by_the_suite():
    """Tests share the default local servers (starting one takes seconds); the suite stops the ones it started."""
    from sweagent.local_models import MODELS
    from sweagent.local_models.server import server_status, stop_server

    running_before = {name for name in MODELS if server_status(name).state == "running"}
    yield
    for name in MODELS:
        if name not in running_before:
            stop_server(name)
