#!/usr/bin/env bash
# Runs every test of Cove on this machine, installing and starting what the tests need.
#   scripts/test.sh
# Native code builds once, in the release profile; wasm components once, in the `wasm` profile.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$COVE_ROOT"
trap stage_summary EXIT

stage "set-up: rust targets (the rest runs in the background while the code compiles)"
ensure_rust_targets
# Packages, the Python venv, dockerd, the sandbox base image and DynamoDB Local need the network
# and the disk more than the CPU: they are prepared while cargo compiles, and waited for before
# the first test runs.
PREP_LOG="$COVE_ROOT/target/prep.log"
mkdir -p "$COVE_ROOT/target"
(
    set -euo pipefail
    ensure_apt git curl python3-venv python3-pylsp python3-setuptools iproute2 iptables util-linux ca-certificates debootstrap rclone fuse3
    ensure_registry
    ensure_venv
    ensure_sdk_ts
    ensure_infra_tools
    "$COVE_ROOT/scripts/docker.sh"
    bash "$COVE_ROOT/tests/images/build-base.sh" >/dev/null
    ensure_dynamodb_local >/dev/null
) >"$PREP_LOG" 2>&1 &
PREP_PID=$!
export COVE_PYTHON="$COVE_CACHE/venv/bin/python"
wait_prep() {
    [ -n "${PREP_PID:-}" ] || return 0
    if ! wait "$PREP_PID"; then
        cat "$PREP_LOG" >&2
        echo "set-up failed (log above: $PREP_LOG)" >&2
        exit 1
    fi
    PREP_PID=""
}
# One compile cache of the wasm components for every `cove` the tests start: each one would
# otherwise compile every component again (~6 s each) in its own data directory. Emptied per run.
export COVE_COMPILE_CACHE="$COVE_ROOT/target/compile-cache"
rm -rf "$COVE_COMPILE_CACHE" && mkdir -p "$COVE_COMPILE_CACHE"

stage "cargo fmt --check; every test file in its package's test binary"
cargo fmt --all --check
"$COVE_ROOT/scripts/check-tests.sh"

# Clippy lints every workspace crate while it compiles, through the driver `cargo clippy` itself
# uses (a check pass first would type-check the whole workspace and its dependencies twice): a
# warning fails the build stage below. Exported for every later cargo call of this run (bench,
# DynamoDB Local), since the wrapper is part of cargo's fingerprint and a call without it would
# rebuild the workspace.
export RUSTC_WORKSPACE_WRAPPER
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

stage "wasm components (linted by clippy as they compile)"
mapfile -t wasm < <(wasm_packages)
cargo build --quiet --target wasm32-wasip2 --profile wasm "${wasm[@]}"

stage "toolbox daemon (musl): build, linted by clippy"
cargo build --quiet --release --target x86_64-unknown-linux-musl -p cove-toolbox
cargo test --quiet --release --target x86_64-unknown-linux-musl -p cove-toolbox --no-run

stage "native binaries, test binaries and examples: build, linted by clippy"
# `--timings`: per-crate compile times in target/cargo-timings/ (what the CI-time work reads).
cargo build --quiet --timings --release --workspace --exclude cove-toolbox --bins
cargo test --quiet --timings --release --workspace --exclude cove-toolbox --no-run

stage "waiting for the set-up (apt, venv, dockerd, base image)"
wait_prep

stage "toolbox daemon (musl): tests"
cargo test --release --target x86_64-unknown-linux-musl -p cove-toolbox

stage "native tests (dynoxide, Docker)"
cargo test --release --workspace --exclude cove-toolbox --no-fail-fast

stage "store suite against AWS DynamoDB Local"
"$COVE_ROOT/scripts/dynamodb-local-tests.sh"

stage "infrastructure checks (tests/infra: table drift, contracts, Kubernetes schemas, cloud-init, checkov)"
COVE_CACHE="$COVE_CACHE" COVE_CHECKOV="$COVE_CACHE/venv-checkov/bin/checkov" COVE_HCL_TOOLS="$COVE_CACHE/hcl-tools/node_modules" \
    "$COVE_CACHE/venv-infra/bin/python" -m pytest -q "$COVE_ROOT/tests/infra"

stage "end-to-end tests with the official Daytona client; schemathesis alongside"
export COVE_BIN="$COVE_ROOT/target/release/cove"
# Schemathesis needs no Docker (its cove has a simulated runner) and the SDK suites mostly wait
# on containers: the two run at the same time.
FUZZ_LOG="$COVE_ROOT/target/fuzz.log"
"$COVE_PYTHON" -m pytest -q "$COVE_ROOT/tests/fuzz" >"$FUZZ_LOG" 2>&1 &
FUZZ_PID=$!
suites_ok=true
"$COVE_PYTHON" -m pytest -q "$COVE_ROOT/tests/e2e" || suites_ok=false
"$COVE_PYTHON" -m pytest -q "$COVE_ROOT/tests/sdk" || suites_ok=false
# the SDK's toolbox calls once more, through the `toolbox` component (toolboxProxyUrl = the control
# plane's /toolbox; the default is cove-proxy's)
COVE_TOOLBOX_VIA=component "$COVE_PYTHON" -m pytest -q "$COVE_ROOT/tests/sdk/test_sdk_flow.py" || suites_ok=false

stage "schemathesis over openapi/control-plane.json (simulated runner; started with the SDK suites)"
fuzz_ok=true
wait "$FUZZ_PID" || fuzz_ok=false
cat "$FUZZ_LOG"
if [ "$suites_ok" != true ] || [ "$fuzz_ok" != true ]; then
    echo "end-to-end suites passed: $suites_ok; schemathesis passed: $fuzz_ok" >&2
    exit 1
fi

stage "benchmarks"
"$COVE_ROOT/scripts/bench.sh"
