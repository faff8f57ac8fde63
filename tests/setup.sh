#!/usr/bin/env bash
# Installs and starts what the integration tests need on a fresh Debian machine, idempotently:
# a Docker engine (Debian's docker.io when `docker info` fails and no dockerd is installed),
# Prometheus (for promtool and the Prometheus-backed tests), busybox-static (the test images
# are built FROM scratch around it, since no registry is reachable), and iproute2, iptables and
# util-linux for the extra Swarm nodes of the multi-node tests.
set -euo pipefail

log() { echo "[setup $(date +%T)] $*" >&2; }

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[[ -x /bin/busybox ]] || missing+=(busybox-static)
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
# The multi-node tests (tests/support/swarm-node.sh) make namespaces, veth pairs and a DNAT rule.
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
if ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null 2>&1; then
  missing+=(docker.io)
fi
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: /tmp/plimsoll-dockerd.log)"
  (setsid dockerd >/tmp/plimsoll-dockerd.log 2>&1 &)
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not come up"; tail -20 /tmp/plimsoll-dockerd.log >&2; exit 1; }
fi
log "ready: $(docker version --format 'Docker engine {{.Server.Version}}'), $(promtool --version 2>&1 | head -1)"
