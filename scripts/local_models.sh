# Sourced by the shell scripts that run the embedded default: start the local model servers that are not running
# yet, export their API bases for config/local_demo.yaml, and stop on exit exactly the servers started here.
oec_start_local_models() {
  local exports
  exports="$(python - "$@" <<'PY'
import sys
from sweagent.local_models.server import ensure_server
for name in sys.argv[1:]:
    info = ensure_server(name)
    print(f"export OEC_{name.upper()}_API_BASE={info.api_base}")
    if info.started_by_us:
        print(f"OEC_STARTED_MODELS=\"$OEC_STARTED_MODELS {name}\"")
PY
)" || return 1
  eval "$exports"
  trap oec_stop_local_models EXIT
}

oec_stop_local_models() {
  local name
  for name in ${OEC_STARTED_MODELS:-}; do
    sweagent serve-local stop "$name" >/dev/null 2>&1 || true
  done
  OEC_STARTED_MODELS=""
}
