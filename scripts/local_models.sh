# Sourced (after scripts/env.sh) by the scripts that may start local model servers. Sourcing installs the cleanup
# before anything starts: however the script ends -- normal end, error, Ctrl-C, SIGTERM, SIGHUP -- the command running
# under oec_run is ended and the servers started for this script are stopped. For `kill -9` of the script, which no
# trap sees, the servers watch its PID ($OEC_LOCAL_MODELS_OWNER, read by every `ensure_server`, so a server that
# Python code starts on its own, like the failure judge, counts too) and stop themselves once it is gone, and
# oec_run's command gets SIGTERM from the kernel (parent-death signal).
export OEC_LOCAL_MODELS_OWNER=$$
OEC_CHILD=""
OEC_REPLY=""

# NAME...: start the servers not running yet (with $OEC_LOCAL_PARALLEL slots when set); export
# OEC_<NAME>_API_BASE and OEC_<NAME>_ANTHROPIC_BASE for the configs
oec_start_local_models() {
  local name key value
  OEC_REPLY="$(mktemp)"
  for name in "$@"; do
    oec_run sweagent serve-local start "$name" ${OEC_LOCAL_PARALLEL:+--parallel "$OEC_LOCAL_PARALLEL"} --export >"$OEC_REPLY"
    while IFS='=' read -r key value; do export "$key=$value"; done <"$OEC_REPLY"
  done
  rm -f "$OEC_REPLY"
}

# COMMAND...: run it and return its status. It runs in the background while the script waits, because bash runs a
# trap only after a foreground command has ended; `&` would also ignore Ctrl-C in it and feed it /dev/null: undone.
oec_run() {
  ( trap - INT QUIT; exec setpriv --pdeathsig TERM -- "$@" ) <&0 &
  OEC_CHILD=$!
  local status=0
  wait "$OEC_CHILD" || status=$?
  OEC_CHILD=""
  return "$status"
}

_oec_cleanup() {
  if [ -n "$OEC_CHILD" ]; then
    kill -TERM "$OEC_CHILD" 2>/dev/null || true
    wait "$OEC_CHILD" 2>/dev/null || true
    OEC_CHILD=""
  fi
  sweagent serve-local stop all --owner_pid $$ >/dev/null || true
  [ -z "$OEC_REPLY" ] || rm -f "$OEC_REPLY"
}

_oec_die_of() {  # SIGNAL: clean up, then end killed by SIGNAL, as callers (a shell loop on Ctrl-C) expect
  trap - "$1" EXIT
  _oec_cleanup
  kill -s "$1" $$
}

trap _oec_cleanup EXIT
trap '_oec_die_of INT' INT
trap '_oec_die_of TERM' TERM
trap '_oec_die_of HUP' HUP
