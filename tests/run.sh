#!/usr/bin/env bash
# Runs every test of the workspace: unit and property tests, and the integration tests against the
# real Docker engine and Prometheus, after making sure those are installed and running.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
cargo test --workspace "$@"
