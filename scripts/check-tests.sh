#!/usr/bin/env bash
# Packages with `autotests = false` run every integration test from one binary (tests/integration.rs,
# one `#[path]` module per file). This fails when a tests/*.rs file is in neither that list nor a
# [[test]] target of its Cargo.toml, so no test can silently stop running; nor may a target that
# builds no test harness (`test = false`) hold a test.
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

# Targets with `test = false` build no test harness (CI time): they must hold no test, or it would
# never run. A library's whole directory is checked, a binary's file.
test_attr='#\[(tokio::)?test|cfg\(test\)'
while IFS= read -r manifest; do
    dir="$(dirname "$manifest")"
    # Each [lib] / [[bin]] section marked `test = false`: "lib <path>" or "bin <path>".
    while read -r kind path; do
        if [ "$kind" = lib ]; then
            where="$dir/$(dirname "${path:-src/lib.rs}")"
        else
            where="$dir/$path"
        fi
        if grep -rlE "$test_attr" "$where" >/dev/null 2>&1; then
            echo "$manifest: a $kind target with test = false has tests ($where): they would never run" >&2
            status=1
        fi
    done < <(awk '
        /^\[/ { if (off) print kind, path; off = 0; path = ""; kind = ($0 == "[lib]") ? "lib" : ($0 == "[[bin]]") ? "bin" : "" }
        kind != "" && /^path = / { gsub(/"/, "", $3); path = $3 }
        kind != "" && /^test = false/ { off = 1 }
        END { if (off) print kind, path }
    ' "$manifest")
done < <(git ls-files '*Cargo.toml')
exit "$status"
