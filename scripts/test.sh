#!/usr/bin/env bash
# The project's one test command (README, .ci/run): starts every service the tests need
# (a throwaway PostgreSQL on 127.0.0.1, SIPp), runs the whole workspace's tests, stops the services.
set -euo pipefail
cd "$(dirname "$0")/.."

# SIPp (Debian's sip-tester) is the real SIP peer of the serve tests.
if ! command -v sipp >/dev/null 2>&1; then
  echo "installing SIPp (sip-tester) from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq sip-tester >&2
fi

eval "$(bash scripts/postgres.sh start)"
trap 'bash scripts/postgres.sh stop "$FANZHA_PG_DIR"' EXIT

cargo test --workspace --locked
