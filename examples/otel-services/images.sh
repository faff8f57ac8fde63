#!/usr/bin/env bash
# Builds the example's binaries statically and an image FROM scratch holding them.
#
#   bash images.sh [TAG]          # default TAG: otel-services:latest
#
# Static with glibc's static libc (`crt-static` on x86_64-unknown-linux-gnu), so no musl target and no
# base image are needed. Builds into ./target of this folder (CARGO_TARGET_DIR overrides it), apart
# from the Plimsoll workspace's target dir, whose debug artifacts it would otherwise not share anyway.
set -euo pipefail
cd "$(dirname "$0")"
tag="${1:-otel-services:latest}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
triple=x86_64-unknown-linux-gnu
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target "$triple" --bins
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$CARGO_TARGET_DIR/$triple/release/"{frontend,backend,load} Dockerfile "$ctx/"
docker build -q -t "$tag" "$ctx"
