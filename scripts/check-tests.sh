#!/usr/bin/env bash
# Packages with `autotests = false` run every integration test from one binary (tests/integration.rs,
# one `#[path]` module per file). This fails when a tests/*.rs file is in neither that list nor a
# [[test]] target of its Cargo.toml, so no test can silently stop running.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$COVE_ROOT"
status=0
while IFS= read -r manifest; do
    grep -q '^autotests = false' "$manifest" || continue
    dir="$(dirname "$manifest")"
    for f in "$dir"/tests/*.rs; do
        name="$(basename "$f")"
        grep -qF "path = \"tests/$name\"" "$manifest" && continue
        grep -qF "#[path = \"$name\"]" "$dir/tests/integration.rs" 2>/dev/null && continue
        echo "$f: not a module of $dir/tests/integration.rs nor a [[test]] of $manifest" >&2
        status=1
    done
done < <(git ls-files '*Cargo.toml')
exit "$status"
