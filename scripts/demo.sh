#!/usr/bin/env bash
# Builds nightjar and runs its demonstration.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo run --release --quiet --bin nightjar -- demo "$@"
