#!/usr/bin/env bash
# Runs every test of Cove on this machine, installing and starting what the tests need.
#   scripts/test.sh
# Native code builds once, in the release profile; wasm components once, in the `wasm` profile.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$COVE_ROOT"
trap stage_summary EXIT

stage "set-up (apt, rust targets, venv, dockerd)"

ensure_rust_targets
ensure_apt git curl python3-venv python3-pylsp python3-setuptools iproute2 iptables util-linux ca-certificates debootstrap rclone fuse3
ensure_registry
ensure_venv
"$COVE_ROOT/scripts/docker.sh"
# One compile cache of the wasm components for every `cove` the tests start: each one would
# otherwise compile every component again (~6 s each) in its own data directory. Emptied per run.
export COVE_COMPILE_CACHE="$COVE_ROOT/target/compile-cache"
rm -rf "$COVE_COMPILE_CACHE" && mkdir -p "$COVE_COMPILE_CACHE"

stage "cargo fmt --check"
cargo fmt --all --check

stage "cargo clippy (release profile: shares build scripts and proc macros with the build)"
cargo clippy --release --workspace --all-targets --quiet -- -D warnings

stage "wasm components"
mapfile -t wasm < <(wasm_packages)
cargo build --quiet --target wasm32-wasip2 --profile wasm "${wasm[@]}"

stage "toolbox daemon (musl)"
cargo build --quiet --release --target x86_64-unknown-linux-musl -p cove-toolbox
cargo test --release --target x86_64-unknown-linux-musl -p cove-toolbox

stage "native tests (dynoxide, Docker)"
cargo build --quiet --release --workspace --exclude cove-toolbox --bins
cargo test --release --workspace --exclude cove-toolbox --no-fail-fast

stage "store suite against AWS DynamoDB Local"
"$COVE_ROOT/scripts/dynamodb-local-tests.sh"

stage "end-to-end tests with the official Daytona client"
COVE_BIN="$COVE_ROOT/target/release/cove" "$COVE_PYTHON" -m pytest -q "$COVE_ROOT/tests/e2e"
COVE_BIN="$COVE_ROOT/target/release/cove" "$COVE_PYTHON" -m pytest -q "$COVE_ROOT/tests/sdk"
# the SDK's toolbox calls once more, through cove-proxy (toolboxProxyUrl = the proxy's /toolbox)
COVE_TOOLBOX_VIA_PROXY=true COVE_BIN="$COVE_ROOT/target/release/cove" "$COVE_PYTHON" -m pytest -q "$COVE_ROOT/tests/sdk/test_sdk_flow.py"

stage "schemathesis over openapi/control-plane.json (simulated runner)"
COVE_BIN="$COVE_ROOT/target/release/cove" "$COVE_PYTHON" -m pytest -q "$COVE_ROOT/tests/fuzz"

stage "benchmarks"
"$COVE_ROOT/scripts/bench.sh"
