#!/usr/bin/env bash
# Runs the benchmarks and prints their figures (they are reported, not asserted).
#   scripts/bench.sh            (after scripts/test.sh has built everything)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$COVE_ROOT"
# Same package selection as scripts/test.sh, so nothing is rebuilt with other features.
cargo build --quiet --release --workspace --exclude cove-toolbox --bins
"$COVE_ROOT/target/release/cove-bench" --seconds "${COVE_BENCH_SECONDS:-5}" --concurrency 16

# The lifecycle sweep over 10,000 sandboxes of which 100 are due: time and DynamoDB requests.
# Same package selection as scripts/test.sh (no rebuild with other features).
cargo test --quiet --release --workspace --exclude cove-toolbox --test sweep_bench -- --ignored --nocapture

# The full SDK path: HTTP → cove → function → runner agent (Docker) → toolbox daemon (~60 s).
# Needs the components and the daemon (no-ops after scripts/test.sh) and a Docker engine.
mapfile -t wasm < <(wasm_packages)
cargo build --quiet --target wasm32-wasip2 --profile wasm "${wasm[@]}"
cargo build --quiet --release --target x86_64-unknown-linux-musl -p cove-toolbox
# The daemon alone over its socket (no Docker): run_code("x+1") in the warm default context,
# a keystroke through a terminal.
musl="$COVE_ROOT/target/x86_64-unknown-linux-musl/release"
"$musl/cove-toolbox-bench" interp "${COVE_TOOLBOX_BENCH_N:-300}"
"$musl/cove-toolbox-pty-bench" "${COVE_TOOLBOX_BENCH_N:-300}"
if docker info >/dev/null 2>&1; then
    # The same through the official Python SDK against `cove up`, plus create -> first run_code
    # with the warm pool (~60 s).
    ensure_venv
    COVE_BIN="$COVE_ROOT/target/release/cove" "$COVE_PYTHON" "$COVE_ROOT/tests/sdk/bench_sdk.py" \
        --runs "${COVE_SDK_BENCH_RUNS:-5}" --n "${COVE_SDK_BENCH_N:-200}"
    "$COVE_ROOT/target/release/cove-sandbox-bench" --creates "${COVE_BENCH_CREATES:-30}" \
        --seconds "${COVE_SANDBOX_BENCH_SECONDS:-2}" --concurrency 16 --exec-concurrency 4 --seed 1000
    # Snapshots through the API: build → active, content-addressed hit, create → first exec
    # from a custom snapshot without a warm pool, propagation to a second runner (~60 s).
    "$COVE_ROOT/target/release/cove-snapshot-api-bench" --runs "${COVE_SNAPSHOT_BENCH_RUNS:-3}"
    # cove-proxy: exec through the proxy vs straight to the agent, a preview GET vs straight to
    # the sandbox's port, the proxy's RSS with 1,000 preview websockets open (~40 s).
    "$COVE_ROOT/target/release/cove-proxy-bench" --seconds "${COVE_PROXY_BENCH_SECONDS:-3}" \
        --websockets "${COVE_PROXY_BENCH_WEBSOCKETS:-1000}"
    # Volumes: POST /volumes -> ready; 256 MiB write/read and 1,000 small files on the volume vs
    # the sandbox's disk (~40 s after cove is up).
    "$COVE_ROOT/target/release/cove-volume-bench"
    # Archive and restore: commit + push to the internal registry, and the restore, of a sandbox
    # with no changes and with 100 MiB of changes (~40 s after cove is up).
    "$COVE_ROOT/target/release/cove-archive-bench"
    # Egress (needs root for network namespaces and iptables): added latency of an allowed HTTPS
    # request through a domain policy vs no policy, create -> started with vs without (~10 s).
    # Same package selection as scripts/test.sh; the filter leaves one test in the agent's binary.
    cargo test --quiet --release --workspace --exclude cove-toolbox --test integration -- \
        --ignored --nocapture egress_policy_bench
else
    echo "cove-sandbox-bench skipped: no Docker engine answers (scripts/docker.sh starts one)" >&2
fi
