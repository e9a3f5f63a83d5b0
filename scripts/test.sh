#!/usr/bin/env bash
# Runs nightjar's whole test suite, including the tests over a private Tor network
# on loopback, after installing what they need.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The OTR v3 instance of SMP is a feature, tested (and linted, in CI) with the rest.
cargo test --workspace --features nightjar-proto/otr3 "$@"
