#!/usr/bin/env bash
# Starts the whole Cove platform on this machine with embedded defaults:
#   scripts/up.sh [cove up flags]      e.g. --listen 127.0.0.1:3000 --data-dir ~/.local/share/cove
# Prints DAYTONA_API_URL and (first start) DAYTONA_API_KEY for the official SDKs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$COVE_ROOT"
ensure_rust_targets
cargo build --quiet --release -p cove-host
exec "$COVE_ROOT/target/release/cove" up --manifest "$COVE_ROOT/spin.toml" "$@"
