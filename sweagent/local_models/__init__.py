"""Local GGUF model servers: the embedded default's stand-ins for vLLM (student) and Claude (expert).

    info = ensure_server("student")      # starts it (and fetches its weights) unless one is already healthy
    litellm.completion(model=info.litellm_model, api_base=info.api_base, api_key="local", messages=[...])
    stop_server("student")
"""

from sweagent.local_models.catalog import MODELS, LocalModelError, ModelSpec, cache_root, get_spec
from sweagent.local_models.server import ServerInfo, ServerStatus, ensure_server, server_status, stop_server
from sweagent.local_models.weights import check_gguf, ensure_weights

__all__ = [
    "MODELS",
    "LocalModelError",
    "ModelSpec",
    "ServerInfo",
    "ServerStatus",
    "cache_root",
    "check_gguf",
    "ensure_server",
    "ensure_weights",
    "get_spec",
    "server_status",
    "stop_server",
]
