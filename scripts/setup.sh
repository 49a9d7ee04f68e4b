#!/usr/bin/env bash
# Installs everything OEC needs: Debian's bubblewrap (the sandbox) and a virtual environment with the pinned
# Python dependencies. Idempotent: a second run only checks a stamp and returns in about a second.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${OEC_VENV:-$REPO/.venv}"
source "$REPO/scripts/cli.sh"
case "${1:-}" in
  "") ;;
  -h|--help) echo "Usage: scripts/setup.sh   (no options; \$OEC_VENV moves the virtual environment)"; exit 0 ;;
  *) oec_usage_error "unknown option '$1'" ;;
esac

if ! command -v bwrap >/dev/null 2>&1; then
  echo "[setup] installing bubblewrap (sandbox for model-written commands)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq bubblewrap >/dev/null
fi

stamp="$VENV/.oec-installed"
# The checkout is installed as a plain path line (setuptools' compat editable mode): the default mode's import
# finder loads pathlib, re and urllib in every interpreter start (20 of 33 ms here: the agent, its sandbox server,
# each tool call).
editable=(-e "$REPO[dev]" --config-settings editable_mode=compat)
want="$( (cat "$REPO/pyproject.toml"; echo "$REPO ${editable[*]}") | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment at $VENV"
  python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
fi
echo "[setup] installing pinned dependencies (first run takes several minutes)"
# torch first and alone: its pinned CPU build must be chosen before anything else asks for torch.
log="$VENV/oec-install.log"
install() { "$VENV/bin/pip" install --disable-pip-version-check "$@" >>"$log" 2>&1 || { tail -n 40 "$log" >&2; echo "[setup] pip failed; full log: $log" >&2; exit 1; }; }
install "torch==$(sed -n 's/.*"torch==\(.*\)",/\1/p' "$REPO/pyproject.toml")"
install "${editable[@]}"
echo "$want" > "$stamp"
echo "[setup] done"
