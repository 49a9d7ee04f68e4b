# Sourced by every script first: usage errors are one line naming the script, on stderr, with exit status 2.
OEC_PROG="${0##*/}"

oec_usage_error() {  # MESSAGE
  echo "$OEC_PROG: $1 (see $OEC_PROG --help)" >&2
  exit 2
}

# In an option loop: `--config) oec_need_value "$@"; config="$2"; shift 2 ;;`. A following option is no value.
oec_need_value() {
  if [ $# -lt 2 ] || [[ $2 == --* ]]; then oec_usage_error "option $1 needs a value"; fi
}

# MODULE ARGS...: what every stage script is. Installs what is missing (scripts/setup.sh), activates the environment
# and runs `python -m MODULE ARGS...` under oec_run, so a local model server the stage starts (the judge's) is
# stopped however it ends. --help, once the environment exists, only asks the module. The Python CLIs parse the options
# and write their own one-line usage errors (sweagent/utils/cli.py).
oec_stage() {
  local module="$1" arg wants_help=no repo
  shift
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  for arg in "$@"; do case "$arg" in -h|--help) wants_help=yes ;; esac; done
  if [ "$wants_help" = yes ] && [ -x "${OEC_VENV:-$repo/.venv}/bin/python" ]; then
    source "$repo/scripts/env.sh"
    exec python -m "$module" "$@"
  fi
  "$repo/scripts/setup.sh"
  source "$repo/scripts/env.sh"
  source "$repo/scripts/local_models.sh"
  oec_run python -m "$module" "$@"
}
