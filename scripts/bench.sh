#!/usr/bin/env bash
# Runs the benchmarks and prints their figures (they are reported, not asserted).
#   scripts/bench.sh            (after scripts/test.sh has built everything)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$COVE_ROOT"
# Same package selection as scripts/test.sh, so nothing is rebuilt with other features.
cargo build --quiet --release --workspace --exclude cove-toolbox --bins
"$COVE_ROOT/target/release/cove-bench" --seconds "${COVE_BENCH_SECONDS:-5}" --concurrency 16
