# Sourced by the shell scripts: activates the project's environment and keeps every library offline-safe.
OEC_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export OEC_REPO
export PATH="${OEC_VENV:-$OEC_REPO/.venv}/bin:$PATH"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TRANSFORMERS_OFFLINE="${TRANSFORMERS_OFFLINE:-1}"
export LITELLM_LOCAL_MODEL_COST_MAP="${LITELLM_LOCAL_MODEL_COST_MAP:-True}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
