#!/usr/bin/env bash
# Docker images for the docker deployment and SWE-smith's harness, built with no registry and no network.
#   scripts/docker_images.sh engine                       # install docker.io and debootstrap when missing; start
#                                                         # dockerd (no bridge network) when nothing answers
#   scripts/docker_images.sh build [--instances FILE]...  # the engine, then every image the instances need
# `build` is idempotent: an image whose inputs (profile, pins, instances) did not change is kept; the debootstrap
# base is cached under $OEC_CACHE/docker. `build --help` lists its options.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/scripts/cli.sh"
STATE="${OEC_CACHE:-$HOME/.cache/oec}/docker"
# dockerd and debootstrap live in sbin, which a clean environment (env -i, cron, a non-login shell) leaves off PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

start_engine() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
    echo "[docker_images] installing docker.io and debootstrap"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq docker.io debootstrap >/dev/null
  fi
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  mkdir -p "$STATE"
  echo "[docker_images] starting dockerd without a bridge network (log: $STATE/dockerd.log)"
  # No bridge, no iptables rules, no masquerading: containers only ever run with --network none.
  $sudo setsid dockerd --bridge=none --iptables=false --ip-masq=false --pidfile "$STATE/dockerd.pid" \
    >>"$STATE/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "$OEC_PROG: dockerd did not answer within 60 s; see $STATE/dockerd.log" >&2
  exit 1
}

case "${1:-}" in
  engine) [ $# -eq 1 ] || oec_usage_error "'engine' takes no options"; start_engine ;;
  build)
    shift
    start_engine
    "$REPO/scripts/setup.sh"
    source "$REPO/scripts/env.sh"
    exec python -m sweagent.environment.container.images "$@" ;;
  -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' ;;
  "") oec_usage_error "expected a command: engine or build" ;;
  *) oec_usage_error "unknown command '$1'" ;;
esac
