#!/usr/bin/env bash
# Starts the whole Cove platform on this machine with embedded defaults:
#   scripts/up.sh [cove up flags]      e.g. --listen 127.0.0.1:3000 --data-dir ~/.local/share/cove
# Prints DAYTONA_API_URL and (first start) DAYTONA_API_KEY for the official SDKs.
# Builds cove, the runner agent (cove-runner) and the in-sandbox toolbox daemon (static musl binary);
# `cove up` then builds the wasm components, starts Docker's default snapshot image build when the
# image is missing, and one local runner agent (pass --no-runner to skip it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$COVE_ROOT"
ensure_rust_targets
if [[ " $* " != *" --internal-registry "* && " $* " != *" --no-internal-registry "* ]]; then
    ensure_registry
fi
cargo build --quiet --release --target x86_64-unknown-linux-musl -p cove-toolbox
cargo build --quiet --release --workspace --exclude cove-toolbox --bins
if [[ " $* " != *" --no-runner "* ]]; then
    bash "$COVE_ROOT/scripts/docker.sh" >&2
fi
exec "$COVE_ROOT/target/release/cove" up --manifest "$COVE_ROOT/spin.toml" "$@"
