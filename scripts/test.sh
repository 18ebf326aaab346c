#!/usr/bin/env bash
# The project's one test command (README, .ci/run): starts every service the tests need
# (a throwaway PostgreSQL on 127.0.0.1), runs the whole workspace's tests, stops the services.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash scripts/postgres.sh start)"
trap 'bash scripts/postgres.sh stop "$FANZHA_PG_DIR"' EXIT

cargo test --workspace --locked
