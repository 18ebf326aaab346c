#!/usr/bin/env bash
# The project's one test command (README, .ci/run): starts every service the tests need
# (a throwaway PostgreSQL on 127.0.0.1, SIPp, the Tansu Kafka broker the Kafka test starts
# on 127.0.0.1), runs the whole workspace's tests, stops the services.
set -euo pipefail
cd "$(dirname "$0")/.."

# SIPp (Debian's sip-tester) is the real SIP peer of the serve tests.
if ! command -v sipp >/dev/null 2>&1; then
  echo "installing SIPp (sip-tester) from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq sip-tester >&2
fi

# The Kafka end-to-end test starts its own Tansu broker on a free 127.0.0.1 port; here it is
# required, not skipped.
FANZHA_TANSU="$(bash scripts/kafka.sh)"
export FANZHA_TANSU FANZHA_REQUIRE_KAFKA=1

eval "$(bash scripts/postgres.sh start)"
trap 'bash scripts/postgres.sh stop "$FANZHA_PG_DIR"' EXIT

cargo test --workspace --locked
