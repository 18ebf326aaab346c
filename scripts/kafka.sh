#!/usr/bin/env bash
# Makes sure a Kafka-protocol broker binary is on this machine for the end-to-end Kafka test
# and prints its path. The broker is Tansu (Apache-2.0, a Kafka-compatible broker written in
# Rust, from crates.io): no JVM, no Docker, starts in ~30 ms with in-memory storage. A build
# already on the machine (PATH, ~/.cargo/bin, or $FANZHA_TANSU) is reused; otherwise it is
# built once (~20 minutes on 2 cores; the storage features are required — without them
# the broker has no storage engine and dies on the first request).
set -euo pipefail
TANSU_VERSION=0.6.0
if [ -n "${FANZHA_TANSU:-}" ] && [ -x "$FANZHA_TANSU" ]; then
  echo "$FANZHA_TANSU"; exit 0
fi
for candidate in "$(command -v tansu || true)" "$HOME/.cargo/bin/tansu"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    echo "$candidate"; exit 0
  fi
done
echo "building the Tansu broker $TANSU_VERSION (once per machine, ~20 min)" >&2
cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,postgres >&2
echo "$HOME/.cargo/bin/tansu"
