#!/usr/bin/env bash
# Installs and starts what the integration tests need on a fresh Debian machine, idempotently:
# a Docker engine (Debian's docker.io when `docker info` fails and no dockerd is installed),
# Prometheus (for promtool and the Prometheus-backed tests), node_exporter (the Hosts dashboard is
# checked on its output too), busybox-static (the test images
# are built FROM scratch around it, since no registry is reachable), and iproute2, iptables and
# util-linux for the extra Swarm nodes of the multi-node tests, and chromium (headless, for the status
# page test), and docker-compose (a real Compose project in tests/parity.rs).
set -euo pipefail

log() { echo "[setup $(date +%T)] $*" >&2; }

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-node-exporter >/dev/null 2>&1 || missing+=(prometheus-node-exporter)
[[ -x /bin/busybox ]] || missing+=(busybox-static)
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
# The multi-node tests (tests/support/swarm-node.sh) make namespaces, veth pairs and a DNAT rule.
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
# tests/status_page.rs renders the status page in headless Chromium.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# tests/parity.rs brings up a real Compose project.
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
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
# The real clients the tests send with (PyPI, pinned): StatsD (tests/statsd.rs) and the OpenTelemetry
# SDK with its OTLP exporters (tests/otlp_metrics.rs).
py_want="statsd==4.0.1 datadog==0.56.0 opentelemetry-sdk==1.45.2 opentelemetry-exporter-otlp-proto-http==1.45.2 opentelemetry-exporter-otlp-proto-grpc==1.45.2"
# shellcheck disable=SC2086 # one word per package
if ! python3 -c 'import importlib.metadata as m, sys; sys.exit(0 if all(m.version(n) == v for n, v in (a.split("==") for a in sys.argv[1:])) else 1)' $py_want 2>/dev/null; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    log "installing python3-pip"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
  fi
  log "installing $py_want"
  # shellcheck disable=SC2086 # one word per package
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore $py_want 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages $py_want
fi

log "ready: $(docker version --format 'Docker engine {{.Server.Version}}'), $(promtool --version 2>&1 | head -1)"
